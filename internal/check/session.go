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

	gosasl "github.com/emersion/go-sasl"

	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/sasl"
	"github.com/mailkey/mailkey/internal/store"
)

var (
	errTimedOut       = errors.New("timed out")
	errNoSTARTTLS     = errors.New("the server does not offer STARTTLS")
	errNoCapabilities = errors.New("the server did not list its capabilities")
)

// session is one logged-in-to-be connection, whatever the protocol.
type session interface {
	// mechanisms returns the SASL mechanisms offered and a description
	// of the capabilities.
	mechanisms() ([]string, string, error)
	authenticate(c gosasl.Client) error
	// command runs the check command after authentication.
	command(email string) (string, error)
	// close ends the session politely.
	close()
}

// sender is a session that can send a test message.
type sender interface {
	send(from, to string, msg []byte) (string, error)
}

// opener starts a session on a connected socket: the greeting and TLS
// (implicit, or STARTTLS). cfg already carries the capture hook.
type opener func(ctx context.Context, raw net.Conn, srv provider.Server, cfg *tls.Config, tr *transcript) (session, error)

var openers = map[provider.Protocol]opener{
	provider.IMAP: openIMAP,
	provider.POP3: openPOP3,
	provider.SMTP: openSMTP,
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
		Email: c.r.t.Email, Host: c.srv.Host, Port: c.srv.Port, Err: err,
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

// run is the checklist, top to bottom.
func (c *checklist) run(ctx context.Context, tr *transcript) {
	r := c.r
	// ---- connect
	start := time.Now()
	raw, detail, err := c.dial(ctx)
	if err != nil {
		c.fail(StepConnect, start, err.Error(), c.observation(StepConnect, err))
		c.skipRest(StepConnect)
		return
	}
	defer raw.Close()
	c.add(Step{Name: StepConnect, Status: StatusOK, Detail: detail, Duration: time.Since(start)})
	tr.note("connected to %s", raw.RemoteAddr())
	// Cancelling ctx (the timeout) wakes up any blocked read or write.
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() {
		raw.SetDeadline(time.Unix(1, 0))
		raw.Close()
	})
	defer stop()
	timeout := func(err error) error {
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("%w after %s: %v", errTimedOut, r.opts.Timeout, err)
		}
		return err
	}

	// ---- greeting and TLS
	start = time.Now()
	var capture tlsCapture
	cfg, err := c.tlsConfig()
	if err != nil {
		c.fail(StepTLS, start, err.Error(), c.observation(StepTLS, err))
		c.skipRest(StepTLS)
		return
	}
	sess, err := openers[c.proto](ctx, raw, c.srv, capture.config(cfg), tr)
	if err != nil {
		err = timeout(err)
		o := c.observation(StepTLS, err)
		observeReply(o, err)
		c.fail(StepTLS, start, describeTLSError(err), o)
		c.skipRest(StepTLS)
		return
	}
	defer sess.close()
	how := "implicit TLS"
	if !c.srv.ImplicitTLS {
		how = "STARTTLS"
	}
	detail, warn := describeTLS(capture.get(), how, r.opts.Now())
	st := Step{Name: StepTLS, Status: StatusOK, Detail: detail, Duration: time.Since(start)}
	if warn {
		st.Status = StatusWarn
		o := c.observation(StepTLS, nil)
		o.CertExpiresSoon = true
		st.Diagnosis = Diagnose(o)
	}
	c.add(st)

	// ---- capabilities
	start = time.Now()
	offered, detail, err := sess.mechanisms()
	mech := ""
	if err == nil {
		mech, err = sasl.Choose(offered, r.t.SASL)
	}
	if err != nil {
		err = timeout(err)
		o := c.observation(StepCapabilities, err)
		o.Offered = offered
		observeReply(o, err)
		c.fail(StepCapabilities, start, joinDetail(detail, err.Error()), o)
		c.skipRest(StepCapabilities)
		return
	}
	detail = joinDetail(detail, "using "+mech)
	if r.t.SASL != "" && !strings.EqualFold(mech, r.t.SASL) {
		detail += " (" + strings.ToUpper(r.t.SASL) + " is not offered)"
	}
	c.add(Step{Name: StepCapabilities, Status: StatusOK, Detail: detail, Duration: time.Since(start)})

	// ---- token
	start = time.Now()
	rec, err := r.token(ctx)
	if err != nil {
		o := c.observation(StepToken, err)
		o.TokenErr = err
		c.fail(StepToken, start, err.Error(), o)
		c.skipRest(StepToken)
		return
	}
	claims := ParseClaims(rec.AccessToken)
	st = Step{Name: StepToken, Status: StatusOK, Detail: describeToken(rec, claims, r.opts.Now()), Duration: time.Since(start)}
	if o := c.tokenDoubts(rec, claims); o != nil {
		st.Status, st.Diagnosis = StatusWarn, Diagnose(o)
	}
	c.add(st)

	// ---- authenticate
	start = time.Now()
	client := c.saslClient(mech, rec.AccessToken, tr)
	err = timeout(sess.authenticate(client))
	if err != nil {
		o := c.observation(StepAuthenticate, err)
		observeReply(o, err)
		if fr, ok := client.(sasl.FailureReporter); ok {
			o.Failure = fr.Failure()
		}
		idx := len(c.res.Steps)
		c.fail(StepAuthenticate, start, authDetail(err, o.Failure), o)
		if !c.retry(ctx, sess, mech, rec, claims, o, tr) {
			c.res.Steps[idx].Diagnosis = Diagnose(o)
			c.skipRest(StepAuthenticate)
			return
		}
		c.res.Steps[idx].Status = StatusWarn
		c.res.Steps[idx].Diagnosis = Diagnose(o)
	} else {
		c.add(Step{Name: StepAuthenticate, Status: StatusOK, Detail: "authenticated as " + r.t.Email + " with " + mech, Duration: time.Since(start)})
	}

	// ---- command after authentication
	start = time.Now()
	detail, err = sess.command(r.t.Email)
	if err != nil {
		err = timeout(err)
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
	s, ok := sess.(sender)
	if !ok {
		return
	}
	detail, err = s.send(r.t.Email, r.opts.SendTo, testMessage(r.t.Email, r.opts.SendTo, r.opts.Now()))
	if err != nil {
		err = timeout(err)
		o := c.observation(StepSend, err)
		observeReply(o, err)
		c.fail(StepSend, start, err.Error(), o)
		return
	}
	c.add(Step{Name: StepSend, Status: StatusOK, Detail: detail, Duration: time.Since(start)})
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

func (c *checklist) saslClient(mech, token string, tr *transcript) gosasl.Client {
	email := c.r.t.Email
	if tr != nil {
		tr.secret(token)
		for _, m := range []string{sasl.XOAUTH2, sasl.OAuthBearer} {
			if ir, err := sasl.InitialResponseBase64(m, email, token, c.srv.Host, c.srv.Port); err == nil {
				tr.secret(ir)
			}
		}
	}
	if mech == sasl.OAuthBearer {
		return sasl.NewOAuthBearerClient(&gosasl.OAuthBearerOptions{Username: email, Token: token, Host: c.srv.Host, Port: c.srv.Port})
	}
	return sasl.NewXOAUTH2Client(email, token)
}

// retry gathers what is known about a refused token into o and, when
// that leaves a stale token as the likely cause, authenticates once more
// with a refreshed one. It reports whether the second attempt succeeded.
func (c *checklist) retry(ctx context.Context, sess session, mech string, rec *store.Record, claims *Claims, o *Observation, tr *transcript) bool {
	r := c.r
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
	if claims != nil {
		o.Identity, o.Scopes = claims.User, claims.Scopes
	}
	if o.Identity == "" {
		o.Identity = rec.Identity
	}
	if o.Scopes == nil {
		o.Scopes = rec.Scopes
	}
	if r.t.Introspect != nil {
		in, err := r.t.Introspect(ctx, rec.AccessToken)
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
	if r.t.ForceRefresh == nil {
		return false
	}
	// The token may be stale: refresh it and try once more.
	start := time.Now()
	fresh, err := r.t.ForceRefresh(ctx, rec.AccessToken)
	if err != nil {
		o.TokenErr = err
		return false
	}
	r.tok = fresh
	client := c.saslClient(mech, fresh.AccessToken, tr)
	if err := sess.authenticate(client); err != nil {
		o2 := c.observation(StepRetry, err)
		observeReply(o2, err)
		if fr, ok := client.(sasl.FailureReporter); ok {
			o2.Failure = fr.Failure()
		}
		c.add(Step{Name: StepRetry, Status: StatusFail, Detail: "with a refreshed token: " + authDetail(err, o2.Failure), Duration: time.Since(start)})
		return false
	}
	o.Refreshed = true
	c.add(Step{Name: StepRetry, Status: StatusOK, Detail: "authenticated as " + r.t.Email + " with a refreshed token", Duration: time.Since(start)})
	return true
}

// authDetail words a failed authentication with the server's challenge.
func authDetail(err error, f *sasl.Failure) string {
	if f != nil {
		return "error challenge: " + f.String() + "; then: " + err.Error()
	}
	return err.Error()
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
