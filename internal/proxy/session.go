package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// preAuthReaderSize is the pre-login read buffer. Lines longer than it are
// assembled from several reads, up to Limits.MaxLine. The reader is dropped
// once the session is spliced.
const preAuthReaderSize = 4 << 10

// Outcomes recorded in the session log line.
const (
	OutcomeOK               = "ok" // logged in and relayed
	OutcomeClosed           = "closed"
	OutcomeQuit             = "quit"
	OutcomeTimeout          = "timeout"
	OutcomeLineTooLong      = "line_too_long"
	OutcomeBadCommands      = "bad_commands"
	OutcomeInjection        = "starttls_injection"
	OutcomeTLSFailed        = "tls_failed"
	OutcomeAuthFailed       = "auth_failed"
	OutcomeAuthError        = "auth_error"
	OutcomeLocalFault       = "local_fault"
	OutcomeRateLimited      = "rate_limited"
	OutcomeUpstreamAuth     = "upstream_auth_failed"
	OutcomeUpstreamFailed   = "upstream_unavailable"
	OutcomeProtocolViolated = "protocol_error"
)

// Session is one client connection, handed to Protocol.Serve. Its methods
// are meant for the protocol's goroutine only.
type Session struct {
	srv    *Server
	id     string
	raw    net.Conn // as accepted
	conn   net.Conn // raw, or the *tls.Conn over it
	r      *bufio.Reader
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	start  time.Time

	account string
	outcome string
	bad     int
	toUp    int64
	toDown  int64

	mu     sync.Mutex // guards up, for closeConns from Shutdown
	up     net.Conn
	closed bool
}

func newSession(srv *Server, c net.Conn) *Session {
	s := &Session{
		srv:   srv,
		id:    newConnID(),
		raw:   c,
		conn:  c,
		start: time.Now(),
	}
	s.ctx, s.cancel = context.WithCancel(srv.baseCtx)
	s.log = srv.logger.With("conn", s.id, "protocol", srv.Protocol.Name())
	return s
}

func (s *Session) run() {
	defer s.cancel()
	stop := context.AfterFunc(s.ctx, s.closeConns)
	defer stop()
	setNoDelay(s.raw)
	s.log.Debug("session start", "remote", s.raw.RemoteAddr().String(), "local", s.raw.LocalAddr().String())

	var err error
	if s.srv.ImplicitTLS {
		if s.srv.TLSConfig == nil {
			err = errors.New("implicit tls without a tls config")
		} else {
			err = s.handshake()
		}
	}
	if err == nil {
		s.r = bufio.NewReaderSize(s.conn, preAuthReaderSize)
		err = s.srv.Protocol.Serve(s)
	}
	s.conn.Close()
	s.closeConns()

	if s.outcome == "" {
		switch {
		case err == nil || errors.Is(err, io.EOF):
			s.outcome = OutcomeClosed
		case IsTimeout(err):
			s.outcome = OutcomeTimeout
		default:
			s.outcome = OutcomeProtocolViolated
		}
	}
	if s.outcome == OutcomeTimeout {
		s.srv.metrics.Timeouts.Add(1)
	}
	attrs := []any{
		"remote", s.raw.RemoteAddr().String(),
		"account", s.account,
		"duration", time.Since(s.start),
		"bytes_in", s.toUp,
		"bytes_out", s.toDown,
		"outcome", s.outcome,
	}
	if err != nil && !errors.Is(err, io.EOF) {
		attrs = append(attrs, "error", err.Error())
	}
	s.log.Info("session end", attrs...)
}

// closeConns closes the client and upstream sockets; it may be called from
// any goroutine, several times.
func (s *Session) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.raw.Close()
	if s.up != nil {
		s.up.Close()
	}
}

// ID is the session's connection id, as logged.
func (s *Session) ID() string { return s.id }

// Context is cancelled when the session ends or the server is shut down.
func (s *Session) Context() context.Context { return s.ctx }

// Logger logs with the session's id and protocol.
func (s *Session) Logger() *slog.Logger { return s.log }

// Hostname is the server's name for greetings.
func (s *Session) Hostname() string { return s.srv.hostname() }

// Limits are the server's limits, defaults filled in.
func (s *Session) Limits() Limits { return s.srv.limits }

// SetOutcome records how the session ended, for its log line.
func (s *Session) SetOutcome(outcome string) { s.outcome = outcome }

// IsTLS reports whether the client connection is encrypted.
func (s *Session) IsTLS() bool {
	_, ok := s.conn.(*tls.Conn)
	return ok
}

// TLSAvailable reports whether STARTTLS may be offered now.
func (s *Session) TLSAvailable() bool { return s.srv.TLSConfig != nil && !s.IsTLS() }

// PlainAuthAllowed reports whether the client may send a password now.
func (s *Session) PlainAuthAllowed() bool {
	if s.srv.AllowPlainAuth != nil {
		return s.srv.AllowPlainAuth(s.conn)
	}
	return s.IsTLS() || IsLoopback(s.raw.RemoteAddr())
}

// IsLoopback reports whether a is a loopback address.
func IsLoopback(a net.Addr) bool {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsTimeout reports whether err is a deadline expiry.
func IsTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ReadLine reads one pre-login line and returns it without its line ending
// (CRLF, or a bare LF). A line longer than Limits.MaxLine returns
// ErrLineTooLong: the protocol should answer and close, since the rest of
// the line cannot be told apart from the next command.
func (s *Session) ReadLine() ([]byte, error) {
	s.conn.SetReadDeadline(time.Now().Add(s.srv.limits.PreAuthTimeout))
	var line []byte
	for {
		frag, err := s.r.ReadSlice('\n')
		if len(line)+len(frag) > s.srv.limits.MaxLine+2 {
			s.outcome = OutcomeLineTooLong
			return nil, ErrLineTooLong
		}
		line = append(line, frag...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			return nil, s.readErr(err)
		}
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// ReadFull reads exactly n bytes (an IMAP literal). The caller bounds n.
func (s *Session) ReadFull(n int) ([]byte, error) {
	s.conn.SetReadDeadline(time.Now().Add(s.srv.limits.PreAuthTimeout))
	b := make([]byte, n)
	if _, err := io.ReadFull(s.r, b); err != nil {
		return nil, s.readErr(err)
	}
	return b, nil
}

func (s *Session) readErr(err error) error {
	if IsTimeout(err) {
		s.outcome = OutcomeTimeout
	}
	return err
}

// Buffered reports how many bytes the client sent that were read but not
// yet consumed.
func (s *Session) Buffered() int { return s.r.Buffered() }

// Reply writes lines to the client, each followed by CRLF, in one write.
func (s *Session) Reply(lines ...string) error {
	n := 0
	for _, l := range lines {
		n += len(l) + 2
	}
	b := make([]byte, 0, n)
	for _, l := range lines {
		b = append(b, l...)
		b = append(b, '\r', '\n')
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.srv.limits.PreAuthTimeout))
	_, err := s.conn.Write(b)
	return err
}

// StartTLS refuses STARTTLS command injection, then sends reply (the
// protocol's "go ahead") and runs the TLS handshake. Bytes the client sent
// after the STARTTLS command, before the handshake, are an attack
// (RFC 3207 §6): StartTLS then returns ErrInjection without replying, and the
// protocol should close the connection.
func (s *Session) StartTLS(reply string) error {
	if s.r.Buffered() > 0 {
		s.srv.metrics.Injections.Add(1)
		s.outcome = OutcomeInjection
		s.log.Warn("refused commands pipelined after starttls", "remote", s.raw.RemoteAddr().String())
		return ErrInjection
	}
	if err := s.Reply(reply); err != nil {
		return err
	}
	if err := s.handshake(); err != nil {
		return err
	}
	s.r.Reset(s.conn)
	return nil
}

func (s *Session) handshake() error {
	tc := tls.Server(s.conn, s.srv.TLSConfig)
	ctx, cancel := context.WithTimeout(s.ctx, s.srv.limits.PreAuthTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		s.srv.metrics.TLSFailures.Add(1)
		s.outcome = OutcomeTLSFailed
		return err
	}
	s.conn = tc
	return nil
}

// BadCommand counts a refused pre-login command. Once the client has sent
// Limits.MaxBadCommands of them it returns ErrTooManyBadCommands and the
// protocol should say goodbye and close.
func (s *Session) BadCommand() error {
	s.srv.metrics.BadCommands.Add(1)
	s.bad++
	if s.bad >= s.srv.limits.MaxBadCommands {
		s.outcome = OutcomeBadCommands
		return ErrTooManyBadCommands
	}
	return nil
}

// Login checks the client's app password and opens the upstream session.
// ehlo is the client's EHLO/HELO line for SMTP, empty otherwise. Errors are
// for Classify: ErrRateLimited, ErrBadCredentials, the Dialer's error, or a
// temporary failure.
func (s *Session) Login(login, password, ehlo string) (*Upstream, error) {
	remote := s.raw.RemoteAddr()
	key := sourceKey(remote)
	audit := func(result, account, label string) {
		if s.srv.Audit != nil {
			s.srv.Audit(LoginEvent{Result: result, Protocol: s.srv.Protocol.Name(), Remote: remote.String(),
				Login: safeLogin(login), Account: account, Label: label})
		}
	}
	if !s.srv.guard.loginAllowed(key, login) {
		s.srv.metrics.RateLimited.Add(1)
		s.outcome = OutcomeRateLimited
		s.log.Warn("login refused: too many failures from this address", "remote", remote.String(), "login", safeLogin(login))
		audit(LoginRateLimited, "", "")
		s.failureDelay()
		return nil, ErrRateLimited
	}
	account, label, err := s.srv.Auth.Authenticate(s.ctx, login, password, remote)
	if err != nil {
		if errors.Is(err, ErrBadCredentials) {
			s.srv.guard.loginFailed(key, login)
			s.srv.metrics.AuthFailed.Add(1)
			s.outcome = OutcomeAuthFailed
			s.log.Info("login failed", "remote", remote.String(), "login", safeLogin(login))
			audit(LoginFailed, "", "")
			s.failureDelay()
			return nil, ErrBadCredentials
		}
		s.outcome = OutcomeAuthError
		if errors.Is(err, ErrLocalFault) {
			s.outcome = OutcomeLocalFault
			s.log.Error("app passwords cannot be checked until their file is fixed", "login", safeLogin(login), "error", err.Error())
			return nil, err
		}
		s.log.Warn("app password check failed", "login", safeLogin(login), "error", err.Error())
		return nil, err
	}
	s.srv.metrics.AuthSucceeded.Add(1)
	s.account = account
	s.log.Debug("app password accepted", "login", safeLogin(login), "account", account, "label", label)
	audit(LoginOK, account, label)

	ctx, cancel := context.WithTimeout(s.ctx, s.srv.limits.DialTimeout)
	defer cancel()
	up, err := s.srv.Dialer.Dial(ctx, UpstreamRequest{
		Protocol: s.srv.Protocol.Name(),
		Account:  account,
		EHLO:     ehlo,
		ConnID:   s.id,
	})
	if err == nil && (up == nil || up.Conn == nil) {
		err = errors.New("dialer returned no connection")
	}
	if err != nil {
		s.srv.metrics.UpstreamFailed.Add(1)
		s.outcome = OutcomeUpstreamFailed
		if errors.Is(err, ErrUpstreamAuth) {
			s.outcome = OutcomeUpstreamAuth
		}
		if errors.Is(err, ErrLocalFault) {
			s.outcome = OutcomeLocalFault
			s.log.Error("the account cannot be served until its stored data is fixed", "account", account, "error", err.Error())
			return nil, err
		}
		s.log.Warn("upstream login failed", "account", account, "error", err.Error())
		return nil, err
	}
	s.mu.Lock()
	closed := s.closed
	s.up = up.Conn
	s.mu.Unlock()
	if closed {
		up.Conn.Close()
		return nil, net.ErrClosed
	}
	return up, nil
}

// safeLogin bounds a login name for logs and strips control characters.
func safeLogin(login string) string {
	const maxLogged = 128
	if len(login) > maxLogged {
		login = login[:maxLogged]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, login)
}

func (s *Session) failureDelay() {
	d := s.srv.limits.FailureDelay
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.ctx.Done():
	}
}

// Splice sends the client reply (the protocol's login success), then
// relays bytes both ways until either side closes or the session is idle for
// Limits.IdleTimeout. Bytes the client pipelined after its login go upstream
// first; bytes up.Reader already holds go to the client right after reply.
func (s *Session) Splice(up *Upstream, reply string) error {
	if err := s.Reply(reply); err != nil {
		return err
	}
	s.outcome = OutcomeOK
	var fromClient, fromUp []byte
	if n := s.r.Buffered(); n > 0 {
		b, _ := s.r.Peek(n)
		fromClient = append([]byte(nil), b...)
	}
	s.r = nil // the pre-login buffer is not needed any more
	if up.Reader != nil {
		if n := up.Reader.Buffered(); n > 0 {
			b, _ := up.Reader.Peek(n)
			fromUp = append([]byte(nil), b...)
		}
	}
	s.srv.metrics.Spliced.Add(1)
	defer s.srv.metrics.Spliced.Add(-1)
	err := splice(s, s.conn, fromClient, up.Conn, fromUp)
	if errors.Is(err, errIdle) {
		s.srv.metrics.Timeouts.Add(1)
	}
	return err
}
