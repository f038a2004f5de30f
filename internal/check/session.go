package check

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/sasl"
	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/internal/upstream"
)

var (
	errTimedOut = errors.New("timed out")
	// errNoSTARTTLS: the diagnosis of a server that will not start TLS.
	errNoSTARTTLS = upstream.ErrNoSTARTTLS
)

// session is a logged-in connection, whatever the protocol.
type session interface {
	// command runs the check command after authentication.
	command(email string) (string, error)
	// close ends the session politely.
	close()
}

// sender is a session that can send a test message.
type sender interface {
	send(from, to string, msg []byte) (string, error)
}

// sessions go on with a login, per protocol.
var sessions = map[provider.Protocol]func(*upstream.Session) session{
	provider.IMAP: newIMAPSession,
	provider.POP3: newPOP3Session,
	provider.SMTP: newSMTPSession,
}

// runner holds what the protocols share: the token, fetched once.
type runner struct {
	t    Target
	opts Options

	tokFetched bool
	tok        *store.Record
	tokErr     error
}

// checklist builds one protocol's Result.
type checklist struct {
	r     *runner
	res   *Result
	srv   provider.Server
	proto provider.Protocol
}

func (c *checklist) add(s Step) *Step {
	c.res.Steps = append(c.res.Steps, s)
	return &c.res.Steps[len(c.res.Steps)-1]
}

// observation starts an observation for a step.
func (c *checklist) observation(step string, err error) *Observation {
	return &Observation{
		Step: step, Protocol: c.proto, Provider: c.r.t.Provider, Flow: c.r.t.Flow, Account: c.r.t.Account,
		Email: c.r.t.Email, Mailbox: c.r.t.Mailbox, Host: c.srv.Host, Port: c.srv.Port, Err: err,
	}
}

// fail records a failed step with its diagnosis.
func (c *checklist) fail(step string, start time.Time, detail string, o *Observation) {
	c.add(Step{Name: step, Status: StatusFail, Detail: detail, Duration: time.Since(start), Diagnosis: Diagnose(o)})
}

// skipRest marks the steps after a failure as not run.
func (c *checklist) skipRest(after string) {
	names := []string{StepConnect, StepTLS, StepCapabilities, StepToken, StepAuthenticate, StepCommand}
	if c.proto == provider.SMTP && c.r.opts.SendTo != "" {
		names = append(names, StepSend)
	}
	i := slices.Index(names, after)
	for _, n := range names[i+1:] {
		c.add(Step{Name: n, Status: StatusSkip})
	}
}

func (r *runner) protocol(ctx context.Context, p provider.Protocol) *Result {
	res := &Result{Protocol: p}
	srv, ok := r.t.Servers[p]
	c := &checklist{r: r, res: res, srv: srv, proto: p}
	if !ok {
		c.fail(StepConnect, time.Now(), ErrNoServer.Error(), c.observation(StepConnect, ErrNoServer))
		c.skipRest(StepConnect)
		return res
	}
	res.Server = srv.String()
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	tr := newTranscript(r.opts.Transcript, p)
	defer tr.end()
	c.run(ctx, tr)
	res.Passed = res.Failed() == nil
	return res
}

// tlsConfigError is a TLS configuration that could not be made (an
// unreadable ca_file): the tls step fails with it, after the connect.
type tlsConfigError struct{ error }

func (e *tlsConfigError) Unwrap() error { return e.error }

// login is one protocol's login through package upstream, recorded step by
// step: the first attempt's phases are the steps connect to authenticate,
// and a second attempt with a refreshed token is "authenticate again".
type login struct {
	c     *checklist
	tr    *transcript
	start time.Time // of the step under way

	offered []string
	capsDet string
	rec     *store.Record
	claims  *Claims
	// auth is the index of a recorded refusal and its observation;
	// retrying is set once a refreshed token is being tried.
	auth     int
	authObs  *Observation
	retrying bool
}

// timeout words an error that came because the session's time ran out.
func (c *checklist) timeout(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w after %s: %v", errTimedOut, c.r.opts.Timeout, err)
	}
	return err
}

// run is the checklist, top to bottom.
func (c *checklist) run(ctx context.Context, tr *transcript) {
	r := c.r
	l := &login{c: c, tr: tr, start: time.Now(), auth: -1}
	cfg, cfgErr := c.tlsConfig()
	sess, err := upstream.For(c.proto)(ctx, &upstream.Options{
		Server: c.srv, TLS: cfg, User: r.t.user(), SASL: r.t.SASL,
		Dial:       func(ctx context.Context) (net.Conn, error) { return l.dial(ctx, cfgErr) },
		Trace:      &upstream.Trace{Secured: l.secured, Offered: l.capabilities},
		Token:      l.token,
		Retry:      l.retry,
		Refresh:    l.refresh,
		Transcript: tr.hook(),
	})
	if err != nil {
		l.failed(ctx, err)
		return
	}
	defer sess.Close()
	l.authenticated(sess.Mechanism)

	// ---- command after authentication
	// Cancelling ctx (the timeout) wakes up any blocked read or write.
	if dl, ok := ctx.Deadline(); ok {
		sess.Conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() {
		sess.Conn.SetDeadline(time.Unix(1, 0))
		sess.Conn.Close()
	})
	defer stop()
	ps := sessions[c.proto](sess)
	defer ps.close()
	start := time.Now()
	detail, err := ps.command(r.t.user())
	if err != nil {
		err = c.timeout(ctx, err)
		o := c.observation(StepCommand, err)
		observeReply(o, err)
		c.fail(StepCommand, start, err.Error(), o)
		c.skipRest(StepCommand)
		return
	}
	c.add(Step{Name: StepCommand, Status: StatusOK, Detail: detail, Duration: time.Since(start)})

	// ---- test message
	if c.proto != provider.SMTP || r.opts.SendTo == "" {
		return
	}
	start = time.Now()
	s, ok := ps.(sender)
	if !ok {
		return
	}
	detail, err = s.send(r.t.user(), r.opts.SendTo, testMessage(r.t.user(), r.opts.SendTo, r.opts.Now()))
	if err != nil {
		err = c.timeout(ctx, err)
		o := c.observation(StepSend, err)
		observeReply(o, err)
		c.fail(StepSend, start, err.Error(), o)
		return
	}
	c.add(Step{Name: StepSend, Status: StatusOK, Detail: detail, Duration: time.Since(start)})
}

// ---- connect
func (l *login) dial(ctx context.Context, cfgErr error) (net.Conn, error) {
	conn, detail, err := l.c.dial(ctx)
	if err != nil {
		return nil, err
	}
	l.tr.note("connected to %s", conn.RemoteAddr())
	if l.retrying {
		return conn, nil
	}
	l.c.add(Step{Name: StepConnect, Status: StatusOK, Detail: detail, Duration: time.Since(l.start)})
	l.start = time.Now()
	if cfgErr != nil {
		conn.Close()
		return nil, &tlsConfigError{cfgErr}
	}
	return conn, nil
}

// ---- greeting and TLS
func (l *login) secured(cs tls.ConnectionState) {
	if l.retrying {
		return
	}
	c := l.c
	how := "implicit TLS"
	if !c.srv.ImplicitTLS {
		how = "STARTTLS"
	}
	detail, warn := describeTLS(&cs, how, c.r.opts.Now())
	st := Step{Name: StepTLS, Status: StatusOK, Detail: detail, Duration: time.Since(l.start)}
	if warn {
		st.Status = StatusWarn
		o := c.observation(StepTLS, nil)
		o.CertExpiresSoon = true
		st.Diagnosis = Diagnose(o)
	}
	c.add(st)
	l.start = time.Now()
}

// ---- capabilities
func (l *login) capabilities(caps upstream.Capabilities) {
	if l.retrying {
		return
	}
	c, r := l.c, l.c.r
	l.offered = caps.Mechanisms
	l.capsDet = describeCapabilities(c.proto, caps)
	mech, err := sasl.Choose(caps.Mechanisms, r.t.SASL)
	if err != nil {
		return // the login fails with it
	}
	detail := joinDetail(l.capsDet, "using "+mech)
	if r.t.SASL != "" && !strings.EqualFold(mech, r.t.SASL) {
		detail += " (" + strings.ToUpper(r.t.SASL) + " is not offered)"
	}
	c.add(Step{Name: StepCapabilities, Status: StatusOK, Detail: detail, Duration: time.Since(l.start)})
	l.start = time.Now()
}

// describeCapabilities words what a server offers.
func describeCapabilities(p provider.Protocol, caps upstream.Capabilities) string {
	if p == provider.SMTP && !caps.SMTPAuth {
		return "offers no AUTH"
	}
	detail := "offers " + orNothing(caps.Mechanisms)
	if caps.SASLIR {
		detail += " (SASL-IR)"
	}
	if caps.MaxSize > 0 {
		detail += "; size limit " + itoa(int(caps.MaxSize/1024/1024)) + " MB"
	}
	return detail
}

func orNothing(list []string) string {
	if len(list) == 0 {
		return "no SASL mechanism"
	}
	return strings.Join(list, " ")
}

// ---- token
func (l *login) token(ctx context.Context) (string, error) {
	c := l.c
	rec, err := c.r.token(ctx)
	if err != nil {
		return "", err
	}
	l.tr.secret(rec.AccessToken)
	l.rec, l.claims = rec, ParseClaims(rec.AccessToken)
	st := Step{Name: StepToken, Status: StatusOK, Detail: describeToken(rec, l.claims, c.r.opts.Now()), Duration: time.Since(l.start)}
	if o := c.tokenDoubts(rec, l.claims); o != nil {
		st.Status, st.Diagnosis = StatusWarn, Diagnose(o)
	}
	c.add(st)
	l.start = time.Now()
	return rec.AccessToken, nil
}

// ---- authenticate
func (l *login) authenticated(mech string) {
	c := l.c
	if !l.retrying {
		c.add(Step{Name: StepAuthenticate, Status: StatusOK, Detail: c.r.t.authenticatedAs() + " with " + mech, Duration: time.Since(l.start)})
		return
	}
	l.authObs.Refreshed = true
	c.res.Steps[l.auth].Status = StatusWarn
	c.res.Steps[l.auth].Diagnosis = Diagnose(l.authObs)
	c.add(Step{Name: StepRetry, Status: StatusOK, Detail: c.r.t.authenticatedAs() + " with a refreshed token", Duration: time.Since(l.start)})
}

// authenticatedAs says who logged in, and to which mailbox when it is
// not their own.
func (t *Target) authenticatedAs() string {
	if t.Mailbox != "" {
		return "signed in as " + t.Email + ", opening shared mailbox " + t.Mailbox
	}
	return "authenticated as " + t.Email
}

// refused records a failed authentication.
func (l *login) refused(ctx context.Context, err error) *Observation {
	c := l.c
	err = c.timeout(ctx, err)
	o := c.observation(StepAuthenticate, err)
	observeReply(o, err)
	l.auth = len(c.res.Steps)
	c.fail(StepAuthenticate, l.start, authDetail(err, o.Failure), o)
	l.authObs = o
	return o
}

// failed records the step the login failed at, and skips the rest.
func (l *login) failed(ctx context.Context, err error) {
	c := l.c
	var ue *upstream.Error
	phase := upstream.PhaseConnect
	if errors.As(err, &ue) {
		phase = ue.Phase
	}
	if l.authObs != nil { // the server refused the token
		switch {
		case l.retrying:
			o2 := c.observation(StepRetry, err)
			observeReply(o2, err)
			c.add(Step{Name: StepRetry, Status: StatusFail, Detail: "with a refreshed token: " + authDetail(err, o2.Failure), Duration: time.Since(l.start)})
		case phase == upstream.PhaseToken: // the forced refresh failed
			l.authObs.TokenErr = ue.Err
		}
		c.res.Steps[l.auth].Diagnosis = Diagnose(l.authObs)
		c.skipRest(StepAuthenticate)
		return
	}
	if ue != nil {
		err = ue.Err
	}
	var tce *tlsConfigError
	if errors.As(err, &tce) {
		phase, err = upstream.PhaseTLS, tce.error
	}
	step := string(phase)
	switch phase {
	case upstream.PhaseConnect:
		c.fail(step, l.start, err.Error(), c.observation(step, err))
	case upstream.PhaseTLS:
		err = c.timeout(ctx, err)
		o := c.observation(step, err)
		observeReply(o, err)
		c.fail(step, l.start, describeTLSError(err), o)
	case upstream.PhaseCapabilities:
		err = c.timeout(ctx, err)
		o := c.observation(step, err)
		o.Offered = l.offered
		observeReply(o, err)
		c.fail(step, l.start, joinDetail(l.capsDet, err.Error()), o)
	case upstream.PhaseToken:
		o := c.observation(step, err)
		o.TokenErr = err
		c.fail(step, l.start, err.Error(), o)
	default:
		l.refused(ctx, err)
	}
	c.skipRest(step)
}

// dial resolves the host and connects within connectTimeout, or the rest of
// the session's timeout when that ends first.
func (c *checklist) dial(ctx context.Context) (net.Conn, string, error) {
	bound := connectTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < connectTimeout {
		bound = c.r.opts.Timeout // the error names the limit that was hit
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	host := c.srv.Host
	var resolved string
	if net.ParseIP(host) == nil {
		addrs, err := net.DefaultResolver.LookupHost(ctx, host)
		if err != nil {
			return nil, "", err
		}
		resolved = fmt.Sprintf(" (%s is %s)", host, strings.Join(addrs, ", "))
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.srv.Addr())
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", fmt.Errorf("%w after %s: %v", errTimedOut, bound, err)
		}
		return nil, "", err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return conn, "connected to " + conn.RemoteAddr().String() + resolved, nil
}

func (c *checklist) tlsConfig() (*tls.Config, error) {
	if c.r.t.TLSConfig == nil {
		return &tls.Config{ServerName: c.srv.Host, MinVersion: tls.VersionTLS12}, nil
	}
	cfg, err := c.r.t.TLSConfig(c.srv.Host)
	if err != nil {
		return nil, err
	}
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName = c.srv.Host
	}
	return cfg, nil
}

// token returns the account's token, fetched once for all protocols.
func (r *runner) token(ctx context.Context) (*store.Record, error) {
	if !r.tokFetched {
		r.tokFetched = true
		r.tok, r.tokErr = r.t.Token(ctx)
	}
	return r.tok, r.tokErr
}

// tokenDoubts returns an observation when the token itself shows it will
// not work: another user, or missing scopes the preset requires.
func (c *checklist) tokenDoubts(rec *store.Record, claims *Claims) *Observation {
	o := c.observation(StepToken, nil)
	o.Needed = c.r.t.Scopes[c.proto]
	switch {
	case claims != nil && claims.User != "":
		o.Identity = claims.User
	case rec.Identity != "":
		o.Identity = rec.Identity
	}
	switch {
	case claims != nil && claims.Scopes != nil:
		o.Scopes = claims.Scopes
	case rec.Scopes != nil:
		o.Scopes = rec.Scopes
	}
	if d := Diagnose(o); d != nil {
		return o
	}
	return nil
}

// retry records the refusal and gathers what is known about the token
// into its observation. It reports whether that leaves a stale token as
// the likely cause, worth a forced refresh and a second try.
func (l *login) retry(ctx context.Context, refusal *upstream.ReplyError) bool {
	c, r := l.c, l.c.r
	o := l.refused(ctx, refusal)
	if !o.rejected() || o.serverTemporary() || o.Code == "5.7.139" {
		return false
	}
	// What the provider says about the token.
	o.Needed = slices.Clone(r.t.Scopes[c.proto])
	if o.Failure != nil && o.Failure.Scope != "" {
		for _, s := range strings.Fields(o.Failure.Scope) {
			if !slices.Contains(o.Needed, s) {
				o.Needed = append(o.Needed, s)
			}
		}
	}
	if l.claims != nil {
		o.Identity, o.Scopes = l.claims.User, l.claims.Scopes
	}
	if o.Identity == "" {
		o.Identity = l.rec.Identity
	}
	if o.Scopes == nil {
		o.Scopes = l.rec.Scopes
	}
	if r.t.Introspect != nil {
		in, err := r.t.Introspect(ctx, l.rec.AccessToken)
		if err == nil {
			o.Inactive = !in.Active
			if in.Active {
				if id := in.Identity(); id != "" {
					o.Identity = id
				}
				if in.Scope != "" {
					o.Scopes = in.Scopes()
				}
			}
		}
	}
	if d := Diagnose(o); d != nil && (d.ID == "token-wrong-user" || d.ID == "token-missing-scope") {
		return false
	}
	return r.t.ForceRefresh != nil
}

// refresh replaces the refused token; upstream then tries once more.
func (l *login) refresh(ctx context.Context, stale string) (string, error) {
	l.start = time.Now()
	fresh, err := l.c.r.t.ForceRefresh(ctx, stale)
	if err != nil {
		return "", err
	}
	l.c.r.tok = fresh
	l.tr.secret(fresh.AccessToken)
	l.retrying = true
	return fresh.AccessToken, nil
}

// authDetail words a failed authentication with the server's challenge
// and its final line.
func authDetail(err error, f *sasl.Failure) string {
	msg := err.Error()
	if re := (*upstream.ReplyError)(nil); errors.As(err, &re) {
		msg = re.Line
	}
	if f != nil {
		return "error challenge: " + f.String() + "; then: " + msg
	}
	return msg
}

func joinDetail(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// testMessage is the --send-to message: short, plain, and saying where it
// came from.
func testMessage(from, to string, now time.Time) []byte {
	return []byte("From: <" + from + ">\r\n" +
		"To: <" + to + ">\r\n" +
		"Subject: mailkey test message\r\n" +
		"Date: " + now.Format(time.RFC1123Z) + "\r\n" +
		"Message-ID: <mailkey-test-" + fmt.Sprint(now.UnixNano()) + "@mailkey.invalid>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"This message was sent by mailkey test --send-to to check that\r\n" +
		"sending through SMTP with OAuth works. No reply is needed.\r\n")
}
