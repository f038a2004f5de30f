package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// Default limits. Line length follows RFC 7162 §4 (servers should accept
// command lines of at least 8192 octets); RFC 4954 asks 12288 for SMTP AUTH
// lines, but no PLAIN response with 255-octet fields needs more than 8 KiB.
const (
	DefaultMaxLine           = 8 << 10
	DefaultPreAuthTimeout    = 60 * time.Second
	DefaultDialTimeout       = 30 * time.Second
	DefaultMaxConnsPerIP     = 100
	DefaultMaxBadCommands    = 5
	DefaultMaxLoginFailures  = 10
	DefaultMaxSourceFailures = 100
	DefaultFailureWindow     = 5 * time.Minute
	DefaultFailureDelay      = time.Second

	// busyWriteTimeout bounds the write of the refusal sent to a source
	// that is over its connection cap.
	busyWriteTimeout = 5 * time.Second
	// acceptBackoffMax bounds the wait after a temporary Accept error.
	acceptBackoffMax = time.Second
)

// Limits bound what one client can make the proxy do. Zero fields take the
// defaults above; IdleTimeout defaults to the protocol's own.
type Limits struct {
	MaxLine        int           // longest pre-login line or IMAP command, literals included
	PreAuthTimeout time.Duration // wait for each pre-login command, and for a TLS handshake
	DialTimeout    time.Duration // wait for the Dialer
	IdleTimeout    time.Duration // after login: no byte in either direction for this long ends the session
	MaxConnsPerIP  int           // simultaneous connections per source address
	MaxBadCommands int           // refused pre-login commands before the connection is closed
	// MaxLoginFailures failed logins with one login name from one source
	// address make further logins with that name from there fail without
	// their password being checked; MaxSourceFailures failed logins from
	// one source address, whatever the names, do the same for every name.
	// Each is a bucket that lets one more try back every FailureWindow /
	// its size: 10 in a row, then one per 30 seconds, by default. Counting
	// per name first keeps one misconfigured client from locking out the
	// others that share its address (every local client is 127.0.0.1).
	MaxLoginFailures  int
	MaxSourceFailures int
	FailureWindow     time.Duration
	// FailureDelay is waited before answering a failed or refused login;
	// negative means no delay.
	FailureDelay time.Duration
}

// orDefault replaces a zero or negative *v with d.
func orDefault[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// sourceDefaults fills in the limits a Guard keeps per source address.
func (l Limits) sourceDefaults() Limits {
	orDefault(&l.MaxConnsPerIP, DefaultMaxConnsPerIP)
	orDefault(&l.MaxLoginFailures, DefaultMaxLoginFailures)
	orDefault(&l.MaxSourceFailures, DefaultMaxSourceFailures)
	orDefault(&l.FailureWindow, DefaultFailureWindow)
	return l
}

func (l Limits) withDefaults(p Protocol) Limits {
	l = l.sourceDefaults()
	orDefault(&l.MaxLine, DefaultMaxLine)
	orDefault(&l.MaxBadCommands, DefaultMaxBadCommands)
	orDefault(&l.PreAuthTimeout, DefaultPreAuthTimeout)
	orDefault(&l.DialTimeout, DefaultDialTimeout)
	orDefault(&l.IdleTimeout, p.DefaultIdleTimeout())
	if l.FailureDelay == 0 {
		l.FailureDelay = DefaultFailureDelay
	}
	return l
}

// Protocol is one mail protocol's pre-login state machine, implemented by
// the imapproxy, pop3proxy and smtpproxy packages.
type Protocol interface {
	// Name is IMAP, POP3 or SMTP.
	Name() string
	// DefaultIdleTimeout is the protocol's inactivity timeout after login.
	DefaultIdleTimeout() time.Duration
	// Busy is the line (without line ending) sent instead of a greeting to
	// a source address that is over its connection cap.
	Busy(hostname string) string
	// Serve greets the client, runs the pre-login dialogue and, once the
	// client has logged in, calls Session.Splice. It returns when the
	// session is over.
	Serve(s *Session) error
}

// Server is one proxy listener. Fill the fields, then call Serve; the
// fields must not change afterwards.
type Server struct {
	Protocol Protocol
	// Addr is the listening address for ListenAndServe, e.g. 127.0.0.1:1143.
	Addr string
	// ImplicitTLS makes clients start TLS at once (imaps, pop3s, smtps).
	ImplicitTLS bool
	// TLSConfig serves implicit TLS and STARTTLS; nil offers no TLS.
	TLSConfig *tls.Config
	// AllowPlainAuth reports whether the client may send a password over
	// conn (which is a *tls.Conn once TLS is up). Nil allows it over TLS or
	// from a loopback address.
	AllowPlainAuth func(conn net.Conn) bool
	// Hostname names this server in greetings; default "localhost".
	Hostname string
	Auth     Authenticator
	Dialer   Dialer
	Logger   *slog.Logger // nil discards
	Limits   Limits
	Metrics  *Metrics // nil allocates one; read it with Stats
	// Guard, when set, is shared with other Servers (every listener of
	// one mailkey serve), so that a source's connection cap and its failed
	// logins count across them; nil gives the Server a Guard of its own.
	Guard *Guard
	// Audit, when set, hears of every local login attempt.
	Audit func(LoginEvent)

	initOnce sync.Once
	limits   Limits
	guard    *Guard
	logger   *slog.Logger
	metrics  *Metrics
	baseCtx  context.Context
	cancel   context.CancelFunc

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	wg        sync.WaitGroup
}

// Guard holds the limits per source address: how many connections it may
// hold at once, and its failed logins, per login name and in all. One
// Guard may serve several Servers.
type Guard struct {
	maxConns int
	byLogin  *failureLimiter // source address and login name
	bySource *failureLimiter // source address

	mu    sync.Mutex
	conns map[string]int
}

// NewGuard returns a Guard with the connection cap and failed-login limits
// of l (MaxConnsPerIP, MaxLoginFailures, MaxSourceFailures,
// FailureWindow; zero takes the defaults).
func NewGuard(l Limits) *Guard {
	l = l.sourceDefaults()
	return &Guard{
		maxConns: l.MaxConnsPerIP,
		byLogin:  newFailureLimiter(l.MaxLoginFailures, l.FailureWindow),
		bySource: newFailureLimiter(l.MaxSourceFailures, l.FailureWindow),
		conns:    make(map[string]int),
	}
}

// maxLoginKey bounds the part of a login name that keys its failures.
const maxLoginKey = 256

// loginAllowed reports whether login may be tried from source now.
func (g *Guard) loginAllowed(source, login string) bool {
	return g.byLogin.Allowed(loginKey(source, login)) && g.bySource.Allowed(source)
}

// loginFailed counts a failed login with login from source.
func (g *Guard) loginFailed(source, login string) {
	g.byLogin.Failed(loginKey(source, login))
	g.bySource.Failed(source)
}

// loginKey keys the failures of one login name (case-folded, as logins
// are matched) from one source address.
func loginKey(source, login string) string {
	if len(login) > maxLoginKey {
		login = login[:maxLoginKey]
	}
	return source + "\x00" + strings.ToLower(login)
}

// acquire counts a connection from key; it reports false when key is over
// its cap.
func (g *Guard) acquire(key string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conns[key] >= g.maxConns {
		return false
	}
	g.conns[key]++
	return true
}

func (g *Guard) release(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conns[key]--; g.conns[key] <= 0 {
		delete(g.conns, key)
	}
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.limits = s.Limits.withDefaults(s.Protocol)
		s.guard = s.Guard
		if s.guard == nil {
			s.guard = NewGuard(s.limits)
		}
		s.logger = s.Logger
		if s.logger == nil {
			s.logger = slog.New(slog.DiscardHandler)
		}
		s.metrics = s.Metrics
		if s.metrics == nil {
			s.metrics = new(Metrics)
		}
		s.baseCtx, s.cancel = context.WithCancel(context.Background())
		s.listeners = make(map[net.Listener]struct{})
	})
}

// Stats returns the server's counters.
func (s *Server) Stats() *Metrics {
	s.init()
	return s.metrics
}

// ListenAndServe listens on s.Addr over TCP and calls Serve.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Shutdown, then returns
// ErrServerClosed. It closes ln.
func (s *Server) Serve(ln net.Listener) error {
	if s.Protocol == nil || s.Auth == nil || s.Dialer == nil {
		return errors.New("proxy: server needs a protocol, an authenticator and a dialer")
	}
	s.init()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), acceptBackoffMax)
				s.logger.Warn("accept failed, retrying", "protocol", s.Protocol.Name(), "error", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		s.wg.Add(1) // under mu, so never after Shutdown's Wait began
		s.mu.Unlock()
		s.metrics.Accepted.Add(1)
		go s.handle(c)
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Shutdown stops accepting connections, waits for running sessions to end
// until ctx is done, then closes them and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
	}
	s.cancel() // every session closes its connections when this fires
	<-done
	return ctx.Err()
}

func sourceKey(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

func (s *Server) hostname() string {
	if s.Hostname != "" {
		return s.Hostname
	}
	return "localhost"
}

func newConnID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) handle(c net.Conn) {
	defer s.wg.Done()
	key := sourceKey(c.RemoteAddr())
	if !s.guard.acquire(key) {
		s.metrics.RejectedBusy.Add(1)
		s.logger.Warn("connection refused: too many from this address",
			"protocol", s.Protocol.Name(), "remote", c.RemoteAddr().String())
		c.SetWriteDeadline(time.Now().Add(busyWriteTimeout))
		c.Write([]byte(s.Protocol.Busy(s.hostname()) + "\r\n"))
		c.Close()
		return
	}
	defer s.guard.release(key)
	s.metrics.Active.Add(1)
	defer s.metrics.Active.Add(-1)

	newSession(s, c).run()
}
