// Package server is `mailkey serve`: it wires the client-facing proxy
// (package proxy) to the local app passwords (package apppass), to the
// token lifecycle manager (package tokens) and to the accounts' mail
// servers, keeps every account's token fresh in the background, and serves
// a status page, /healthz and Prometheus /metrics.
//
// Upstream, the Dialer (dial.go) hands each session to package upstream,
// which logs in to the account's server over verified TLS with XOAUTH2 or
// OAUTHBEARER, as mailkey test does; a token the server refuses is
// replaced once (tokens.Manager.ForceRefresh) and the login retried on a
// new connection.
//
// Listeners bind loopback unless the configuration explicitly allows
// otherwise, and then only with implicit TLS; the certificate is the
// user's, or one generated once into the state folder (package certs).
//
// The package is wiring: server.go puts the pieces together, dial.go is the
// upstream dialer, status.go and status.html the status page, metrics.go
// the Prometheus metrics and refresher.go the background refresh of each
// account's token.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailkey/mailkey/internal/account"
	"github.com/mailkey/mailkey/internal/apppass"
	"github.com/mailkey/mailkey/internal/audit"
	"github.com/mailkey/mailkey/internal/certs"
	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/proxy"
	"github.com/mailkey/mailkey/internal/proxy/imapproxy"
	"github.com/mailkey/mailkey/internal/proxy/pop3proxy"
	"github.com/mailkey/mailkey/internal/proxy/smtpproxy"
	"github.com/mailkey/mailkey/internal/store"
)

// Defaults.
const (
	DefaultShutdownTimeout = 10 * time.Second
	// flushInterval: last-use times of app passwords are written at most
	// this often.
	flushInterval = time.Minute
	// statusTimeout bounds each request to the status listener.
	statusTimeout = 10 * time.Second
)

// RecordReader reads stored token records without refreshing them (for the
// status page); *store.FileStore implements it.
type RecordReader interface {
	Get(ctx context.Context, account string) (*store.Record, error)
}

// Config is what a Server needs. Proxy holds the listeners after any
// command-line overrides ("" disables one).
type Config struct {
	Proxy config.Proxy
	// Accounts are served from the start; Reload replaces them.
	Accounts []*config.Account
	// Tokens hands out and refreshes access tokens.
	Tokens Tokens
	// Store is read for the status page; nil leaves token states out.
	Store RecordReader
	// Passwords is the app password file.
	Passwords *apppass.File
	// StateDir holds the generated listener certificate.
	StateDir string
	// RefreshMargin is the token manager's margin; tokens are refreshed in
	// the background when they expire within twice this, or at half their
	// life when they live shorter than four margins.
	RefreshMargin time.Duration
	// ShutdownTimeout bounds how long running sessions may go on after
	// Run's context ends. Default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	// Hint words the next step for a token error of an account, for the
	// refresher's log (the CLI's words); nil logs none.
	Hint func(account string, err error) string
	// Command words a next step for an account as the user types it (the
	// CLI's words), for messages to mail clients and the status page; nil
	// names none.
	Command func(step Step, account string) string
	// NotifyCommand, when set, is run through the shell for every
	// notification (see Notification), with the event in its environment
	// and no secret in it.
	NotifyCommand string
	// NotifyDesktop shows notifications on the desktop, through
	// org.freedesktop.Notifications on the D-Bus session bus.
	NotifyDesktop bool
	// NotifyReminder repeats needs-login this often while it lasts;
	// default DefaultNotifyReminder.
	NotifyReminder time.Duration
	// ExpiryWarning sends expiry-warning this long before a grant's known
	// end; default DefaultExpiryWarning.
	ExpiryWarning time.Duration
	// Audit records app passwords used, refused and rate-limited, and
	// grants refreshed, lost and recovered; nil records none.
	Audit *audit.Log
	// SignIn lets the status page sign accounts in again; nil offers no
	// such action.
	SignIn SignIn
	// Limits for every proxy listener; zero fields take proxy's defaults.
	Limits  proxy.Limits
	Version string
	// Ready, when set, is called once every listener is bound and served,
	// and Stopping when the shutdown begins, for a service manager
	// (systemd's sd_notify, the Windows service control manager).
	Ready    func()
	Stopping func()
}

// A Step is what a user does next about an account, named in messages to
// mail clients and on the status page; Config.Command words it.
type Step int

const (
	StepLogin  Step = iota // sign the account in again
	StepTest               // diagnose the account's logins
	StepStatus             // see what is wrong with mailkey's own data
)

// Listener names, as used by Addr and in logs.
const (
	ListenIMAP   = "imap"
	ListenIMAPS  = "imaps"
	ListenPOP3   = "pop3"
	ListenPOP3S  = "pop3s"
	ListenSMTP   = "smtp"
	ListenSMTPS  = "smtps"
	ListenStatus = "status"
)

// Server is a configured `mailkey serve`.
type Server struct {
	cfg         Config
	log         *slog.Logger
	cert        tls.Certificate
	certFile    string
	fingerprint string
	generated   bool
	m           *metrics
	dialer      *Dialer
	verifier    *apppass.Verifier
	byProto     map[string]*proxy.Metrics
	listeners   []*listener
	notifier    *notifier
	statusAddr  string
	statusSrv   *http.Server
	started     time.Time

	mu       sync.Mutex
	statusLn net.Listener
	// The accounts served now and their refreshers, changed by Reload.
	accts      []*config.Account
	refreshers map[string]*refresher
	// bg and bgWG run the refreshers once Run has started; nil before.
	bg   context.Context
	bgWG *sync.WaitGroup
}

// Reloaded is what a Reload changed.
type Reloaded struct {
	Added, Removed, Changed []string
	// Skipped are the accounts left out, by name: their ca_file cannot be
	// read.
	Skipped map[string]error
}

// accounts returns the accounts served now.
func (s *Server) accounts() []*config.Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accts
}

// refresherOf returns the refresher of the account named, nil when it is
// not served.
func (s *Server) refresherOf(name string) *refresher {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshers[name]
}

// Reload makes accounts the ones served, for the sessions that start from
// now on; running sessions go on. An account configured as before keeps
// its refresher and its state; a changed one starts anew; app passwords
// are checked anew from their file at the next login of each. Listener
// settings are not changed by a reload.
func (s *Server) Reload(accounts []*config.Account) Reloaded {
	r := s.apply(accounts)
	s.verifier.Forget()
	return r
}

// apply installs accounts in the dialer and the refreshers.
func (s *Server) apply(accounts []*config.Account) Reloaded {
	var r Reloaded
	r.Skipped = s.dialer.set(accounts)
	accounts = slices.DeleteFunc(slices.Clone(accounts), func(a *config.Account) bool { return r.Skipped[a.Name] != nil })
	s.mu.Lock()
	defer s.mu.Unlock()
	old := map[string]*config.Account{}
	for _, a := range s.accts {
		old[a.Name] = a
	}
	next := map[string]bool{}
	for _, a := range accounts {
		next[a.Name] = true
		prev, had := old[a.Name]
		switch {
		case !had:
			r.Added = append(r.Added, a.Name)
		case !account.Same(prev, a):
			r.Changed = append(r.Changed, a.Name)
		default:
			continue
		}
		if rf := s.refreshers[a.Name]; rf != nil {
			rf.stop()
		}
		rf := newRefresher(a.Name, s.cfg.Tokens, s.cfg.RefreshMargin, s.log, s.m)
		rf.hint, rf.command, rf.email, rf.notify = s.cfg.Hint, s.cfg.Command, a.Email, s.notifier
		s.refreshers[a.Name] = rf
		if s.bg != nil {
			s.startRefresher(rf)
		}
	}
	for _, a := range s.accts {
		if !next[a.Name] {
			r.Removed = append(r.Removed, a.Name)
			if rf := s.refreshers[a.Name]; rf != nil {
				rf.stop()
			}
			delete(s.refreshers, a.Name)
			s.notifier.forget(a.Name)
		}
	}
	s.accts = accounts
	return r
}

// startRefresher runs rf in the background until it is stopped or Run
// ends; s.mu is held.
func (s *Server) startRefresher(rf *refresher) {
	ctx, cancel := context.WithCancel(s.bg)
	rf.stop = cancel
	s.bgWG.Go(func() { rf.run(ctx) })
}

type listener struct {
	name string
	addr string
	srv  *proxy.Server
	ln   net.Listener
}

// ListenError reports a listener address the security rules refuse.
type ListenError struct {
	Name, Addr, Reason, Hint string
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("listener %s on %s: %s", e.Name, e.Addr, e.Reason)
}

// checkListen applies the rules: loopback by default; beyond it, only
// implicit-TLS listeners (and the status page) with allow_non_loopback.
func checkListen(name, addr string, implicitTLS, allow bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return &ListenError{Name: name, Addr: addr, Reason: "not HOST:PORT", Hint: `write HOST:PORT, such as "127.0.0.1:1143", or "off"`}
	}
	if host != "" && provider.IsLoopbackHost(host) {
		return nil
	}
	switch {
	case name == ListenStatus && allow:
		return nil
	case name == ListenStatus:
		return &ListenError{Name: name, Addr: addr, Reason: "the status page listens beyond loopback",
			Hint: "bind it to 127.0.0.1, or set allow_non_loopback = true in [proxy]"}
	case !implicitTLS:
		return &ListenError{Name: name, Addr: addr, Reason: "a listener beyond loopback must use TLS",
			Hint: fmt.Sprintf("bind %s to 127.0.0.1, or use %ss with allow_non_loopback = true in [proxy]", name, name)}
	case !allow:
		return &ListenError{Name: name, Addr: addr, Reason: "the listener is not on loopback",
			Hint: "bind it to 127.0.0.1, or set allow_non_loopback = true in [proxy]"}
	}
	return nil
}

// New checks the listeners, loads (or generates) the certificate and
// builds the proxy servers. It binds nothing; Listen does.
func New(cfg Config) (*Server, error) {
	if cfg.Tokens == nil || cfg.Passwords == nil {
		return nil, errors.New("server: config needs tokens and passwords")
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.RefreshMargin <= 0 {
		cfg.RefreshMargin = config.DefaultRefreshMargin
	}
	s := &Server{cfg: cfg, log: cfg.Logger, m: newMetrics(), byProto: map[string]*proxy.Metrics{}}
	s.m.health = s.health
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	p := cfg.Proxy
	specs := []struct {
		name     string
		addr     string
		proto    proxy.Protocol
		implicit bool
	}{
		{ListenIMAP, p.IMAP, imapproxy.Protocol{}, false},
		{ListenIMAPS, p.IMAPS, imapproxy.Protocol{}, true},
		{ListenPOP3, p.POP3, pop3proxy.Protocol{}, false},
		{ListenPOP3S, p.POP3S, pop3proxy.Protocol{}, true},
		{ListenSMTP, p.SMTP, smtpproxy.Protocol{}, false},
		{ListenSMTPS, p.SMTPS, smtpproxy.Protocol{}, true},
	}
	for _, sp := range specs {
		if sp.addr == "" {
			continue
		}
		if err := checkListen(sp.name, sp.addr, sp.implicit, p.AllowNonLoopback); err != nil {
			return nil, err
		}
	}
	if p.Status != "" {
		if err := checkListen(ListenStatus, p.Status, false, p.AllowNonLoopback); err != nil {
			return nil, err
		}
	}

	var err error
	s.cert, s.generated, err = certs.Load(p.CertFile, p.KeyFile, cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("proxy certificate: %w", err)
	}
	s.certFile = p.CertFile
	if s.certFile == "" {
		s.certFile, _ = certs.Paths(cfg.StateDir)
	}
	s.fingerprint = certs.Fingerprint(s.cert.Certificate[0])
	tlsConf := &tls.Config{Certificates: []tls.Certificate{s.cert}, MinVersion: tls.VersionTLS12}

	s.dialer, _ = newDialer(nil, cfg.Tokens, s.log, s.m)
	s.notifier = newNotifier(cfg.NotifyReminder, cfg.ExpiryWarning, s.log)
	s.notifier.audit = cfg.Audit
	if cfg.NotifyCommand != "" {
		s.notifier.sinks = append(s.notifier.sinks, commandSink(cfg.NotifyCommand))
	}
	if cfg.NotifyDesktop {
		s.notifier.sinks = append(s.notifier.sinks, desktopSink())
	}
	s.refreshers = map[string]*refresher{}
	for name, err := range s.apply(cfg.Accounts).Skipped {
		s.log.Error("account left out: it cannot be served until its configuration is fixed", "account", name, "error", err.Error())
	}
	s.dialer.command = cfg.Command
	s.dialer.refreshed = func(account string) {
		s.mu.Lock()
		r := s.refreshers[account]
		s.mu.Unlock()
		if r != nil {
			r.poke()
		}
	}
	s.verifier = cfg.Passwords.NewVerifier(func(login string) []string { return LoginAccounts(s.accounts())(login) })
	s.m.hashes = s.verifier.Hashes
	auth := authenticator{v: s.verifier, command: cfg.Command}
	// One guard for every listener: a source's connections and failed
	// logins count across IMAP, POP3 and SMTP, plain and TLS.
	guard := proxy.NewGuard(cfg.Limits)
	for _, sp := range specs {
		if sp.addr == "" {
			continue
		}
		pm := s.byProto[sp.proto.Name()]
		if pm == nil {
			pm = new(proxy.Metrics)
			s.byProto[sp.proto.Name()] = pm
		}
		s.listeners = append(s.listeners, &listener{name: sp.name, addr: sp.addr, srv: &proxy.Server{
			Protocol:    sp.proto,
			Addr:        sp.addr,
			ImplicitTLS: sp.implicit,
			TLSConfig:   tlsConf,
			Auth:        auth,
			Dialer:      s.dialer,
			Logger:      s.log,
			Limits:      cfg.Limits,
			Metrics:     pm,
			Guard:       guard,
			Audit:       s.auditLogin,
		}})
	}
	s.m.byProto = s.byProto
	s.statusAddr = p.Status
	return s, nil
}

// LoginAccounts maps a login name to the accounts it may mean: the
// account of that name, and every account whose mailbox address it is (in
// any case). An account that opens a shared mailbox answers to the
// mailbox's address, not to the delegate's, which is the delegate's own
// account's.
func LoginAccounts(accounts []*config.Account) func(login string) []string {
	return func(login string) []string {
		var out []string
		for _, a := range accounts {
			if a.Name == login || strings.EqualFold(a.User(), login) {
				out = append(out, a.Name)
			}
		}
		return out
	}
}

// authenticator adapts the app password verifier to proxy.Authenticator.
type authenticator struct {
	v       *apppass.Verifier
	command func(Step, string) string // Config.Command
}

func (a authenticator) Authenticate(ctx context.Context, login, password string, remote net.Addr) (string, string, error) {
	m, err := a.v.CheckFrom(ctx, sourceOf(remote), login, password)
	switch {
	case errors.Is(err, apppass.ErrNoMatch):
		return "", "", proxy.ErrBadCredentials
	case errors.Is(err, apppass.ErrBusy):
		return "", "", &proxy.UpstreamError{Message: "Too many logins are being checked, try again later", Err: err}
	case err != nil && ctx.Err() == nil:
		// Check fails otherwise only when the file cannot be read.
		return "", "", &proxy.UpstreamError{
			Message: "mailkey cannot read its app password file" + run(a.command, "", StepStatus, ""),
			Err:     fmt.Errorf("%w: %w", proxy.ErrLocalFault, err),
		}
	}
	return m.Account, m.Label, err
}

// auditLogin records a local login attempt.
func (s *Server) auditLogin(e proxy.LoginEvent) {
	kind := map[string]string{proxy.LoginOK: audit.AppPasswordUsed, proxy.LoginFailed: audit.AppPasswordFailed,
		proxy.LoginRateLimited: audit.AppPasswordRateLimited}[e.Result]
	s.cfg.Audit.Record(audit.Event{Event: kind, Account: e.Account, Login: e.Login, Label: e.Label, Source: e.Remote, Protocol: e.Protocol})
}

// sourceOf is the address a client connected from, without its port.
func sourceOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// Fingerprint is the SHA-256 fingerprint of the listeners' certificate.
func (s *Server) Fingerprint() string { return s.fingerprint }

// CertFile is the path of the listeners' certificate.
func (s *Server) CertFile() string { return s.certFile }

// GeneratedCert reports whether New generated the certificate.
func (s *Server) GeneratedCert() bool { return s.generated }

// Listen binds every listener, so that a taken port is reported before
// anything is served. Run calls it if needed.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var bound []net.Listener
	fail := func(name, addr string, err error) error {
		for _, ln := range bound {
			ln.Close()
		}
		for _, l := range s.listeners {
			l.ln = nil
		}
		return fmt.Errorf("listener %s on %s: %w", name, addr, err)
	}
	for _, l := range s.listeners {
		if l.ln != nil {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fail(l.name, l.addr, err)
		}
		l.ln = ln
		bound = append(bound, ln)
	}
	if s.statusAddr != "" && s.statusLn == nil {
		ln, err := net.Listen("tcp", s.statusAddr)
		if err != nil {
			return fail(ListenStatus, s.statusAddr, err)
		}
		s.statusLn = ln
	}
	return nil
}

// Addr returns the bound address of a listener (ListenIMAP, …,
// ListenStatus), or "" when it is off or not bound yet: with port 0 in the
// configuration, this is where the port chosen shows.
func (s *Server) Addr(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == ListenStatus {
		if s.statusLn == nil {
			return ""
		}
		return s.statusLn.Addr().String()
	}
	for _, l := range s.listeners {
		if l.name == name && l.ln != nil {
			return l.ln.Addr().String()
		}
	}
	return ""
}

// Stats returns the proxy counters of a protocol (proxy.IMAP, …), nil
// when no listener serves it.
func (s *Server) Stats(protocol string) *proxy.Metrics { return s.byProto[protocol] }

// Handler is the status page, /healthz and /metrics.
func (s *Server) Handler() http.Handler { return s.statusHandler() }

// Run serves until ctx is done, then stops accepting, lets running
// sessions finish for up to ShutdownTimeout, closes the rest, and writes
// the app passwords' last use. It returns nil after a clean shutdown.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.started = time.Now()
	s.log.Info("mailkey serve starting", "version", s.cfg.Version, "accounts", len(s.accounts()))
	s.log.Info("proxy certificate", "file", s.certFile, "sha256", s.fingerprint, "generated", s.generated)
	now := time.Now()
	for _, h := range s.health(ctx) {
		for _, w := range account.EarlyWarnings(h.conf, h.rec, now) {
			s.log.Warn("deadline ahead: "+w.Text, "account", h.name, "at", w.At.Format(time.RFC3339), "fix", w.Fix)
		}
	}

	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	var bgWG sync.WaitGroup
	s.mu.Lock()
	s.bg, s.bgWG = bg, &bgWG
	for _, rf := range s.refreshers {
		s.startRefresher(rf)
	}
	s.mu.Unlock()
	bgWG.Go(func() { s.notifier.run(bg) })
	bgWG.Go(func() {
		t := time.NewTicker(flushInterval)
		defer t.Stop()
		for {
			select {
			case <-bg.Done():
				return
			case <-t.C:
				if err := s.verifier.Flush(bg); err != nil && bg.Err() == nil {
					s.log.Warn("could not record app password use", "error", err.Error())
				}
			}
		}
	})

	errc := make(chan error, len(s.listeners)+1)
	for _, l := range s.listeners {
		s.log.Info("listening", "listener", l.name, "addr", l.ln.Addr().String(), "implicit_tls", l.srv.ImplicitTLS)
		go func() {
			if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, proxy.ErrServerClosed) {
				errc <- fmt.Errorf("listener %s: %w", l.name, err)
			}
		}()
	}
	s.mu.Lock()
	statusLn := s.statusLn
	s.mu.Unlock()
	if statusLn != nil {
		s.statusSrv = &http.Server{Handler: s.statusHandler(), ReadHeaderTimeout: statusTimeout, ReadTimeout: statusTimeout, WriteTimeout: statusTimeout}
		s.log.Info("listening", "listener", ListenStatus, "addr", statusLn.Addr().String())
		go func() {
			if err := s.statusSrv.Serve(statusLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("listener status: %w", err)
			}
		}()
	}

	if s.cfg.Ready != nil {
		s.cfg.Ready()
	}

	var runErr error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout)
	case runErr = <-errc:
		s.log.Error("listener failed, shutting down", "error", runErr.Error())
	}
	if s.cfg.Stopping != nil {
		s.cfg.Stopping()
	}
	stopBG()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, l := range s.listeners {
		wg.Go(func() {
			if err := l.srv.Shutdown(sctx); err != nil {
				s.log.Warn("sessions still running at the shutdown timeout were closed", "listener", l.name)
			}
		})
	}
	if s.statusSrv != nil {
		wg.Go(func() { s.statusSrv.Shutdown(sctx) })
	}
	wg.Wait()
	bgWG.Wait()
	fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer fcancel()
	if err := s.verifier.Flush(fctx); err != nil {
		s.log.Warn("could not record app password use", "error", err.Error())
	}
	s.log.Info("mailkey serve stopped")
	return runErr
}
