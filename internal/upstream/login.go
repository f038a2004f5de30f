// Package upstream logs in to an account's mail server with OAuth 2.0. It
// is the one login of mailkey: `mailkey serve` relays the session it
// returns to a mail client, and `mailkey test` runs a command on it and
// diagnoses what failed.
//
// There is one login per protocol, side by side: LoginIMAP (RFC 9051, RFC
// 3501; AUTHENTICATE with SASL-IR, RFC 4959), LoginPOP3 (RFC 1939; CAPA,
// RFC 2449; AUTH, RFC 5034, through the wire client in package pop3) and
// LoginSMTP (submission, RFC 6409 and RFC 5321; AUTH, RFC 4954). Each one
// requires TLS, implicit (RFC 8314) or STARTTLS (RFC 2595, RFC 3207, with
// bytes the server sent before the handshake refused) verified against the
// configuration it is given; reads the greeting and the capabilities;
// chooses XOAUTH2 or OAUTHBEARER (RFC 7628) from what the server offers
// (sasl.Choose); and drives a sasl.Client through every challenge. A token
// the server refuses is refreshed once (Options.Refresh) and the login
// tried again on a new connection. The session comes back positioned right
// after the server's success reply.
//
// The protocol code before authentication is written here from the RFCs,
// because the relay needs the raw connection positioned right after that
// reply, which no client library hands over.
package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"

	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/upstream/pop3"
)

// Phase is a part of a login, in order. mailkey test shows each as a step
// of its checklist.
type Phase string

const (
	PhaseConnect      Phase = "connect"
	PhaseTLS          Phase = "tls" // the greeting and TLS, implicit or STARTTLS
	PhaseCapabilities Phase = "capabilities"
	PhaseToken        Phase = "token"
	PhaseAuthenticate Phase = "authenticate"
)

// Error is a failed login: the phase that failed, and why.
type Error struct {
	Phase Phase
	Err   error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ErrBufferedBeforeTLS reports bytes the server sent after its STARTTLS
// (or STLS) go-ahead, before the handshake: they could be injected by a man
// in the middle (CVE-2011-0411 and kin), so the connection is dropped.
var ErrBufferedBeforeTLS = errors.New("server sent data after its starttls reply, before tls (possible injection)")

// ErrNoSTARTTLS is returned when a server on a STARTTLS URL does not offer
// it: mailkey never sends a token without TLS.
var ErrNoSTARTTLS = errors.New("the server does not offer STARTTLS")

// Options say what to log in to, and how.
type Options struct {
	Server provider.Server
	// TLS is the verified client configuration (system roots, or the
	// account's ca_file); an empty ServerName means Server.Host.
	TLS *tls.Config
	// User is the SASL user: the mailbox's address.
	User string
	// SASL is the preferred mechanism: "xoauth2", "oauthbearer" or "".
	SASL string
	// EHLO is, for SMTP, the mail client's own EHLO or HELO line, replayed
	// upstream; "" sends EHLO localhost.
	EHLO string

	// Token returns the access token. It is called once the capabilities
	// are read, so that a server that cannot be used costs no token.
	Token func(ctx context.Context) (string, error)
	// Retry, when set, decides whether a refused token is worth a forced
	// refresh; nil means it always is.
	Retry func(ctx context.Context, refusal *ReplyError) bool
	// Refresh replaces a token the server refused (stale); the login is
	// then tried once more on a new connection. Nil means no second try.
	Refresh func(ctx context.Context, stale string) (string, error)

	// Dial connects to the server; nil means a net.Dialer to Server.Addr().
	Dial func(ctx context.Context) (net.Conn, error)
	// Trace, when set, hears how the phases end.
	Trace *Trace
	// Transcript, when set, hears each line sent and received, and notes,
	// with the token and the initial response replaced by Redacted.
	Transcript func(dir Direction, line string)
}

// Trace hears how a login goes, for mailkey test's checklist. Each field
// may be nil; each is called on every attempt.
type Trace struct {
	// Secured: TLS is up and verified, the greeting read.
	Secured func(cs tls.ConnectionState)
	// Offered: the capabilities are read. It is called before the
	// mechanism is chosen, even when none fits.
	Offered func(c Capabilities)
}

// Capabilities is what a server says it can do, as far as a login cares.
type Capabilities struct {
	Mechanisms []string // SASL mechanisms, "AUTH=" prefix removed
	SASLIR     bool     // IMAP SASL-IR (RFC 4959)
	SMTPAuth   bool     // SMTP: the AUTH extension is there at all
	MaxSize    int64    // SMTP SIZE (RFC 1870) in bytes; 0 when not given
}

// Session is a logged-in connection.
type Session struct {
	// Conn is the connection, TLS, positioned right after the server's
	// success reply. Its deadlines are cleared.
	Conn net.Conn
	// Reader reads Conn; it may already hold bytes the server sent after
	// its success reply, so every read goes through it.
	Reader *bufio.Reader
	// Capabilities are, for IMAP, the server's capabilities after login
	// (from its tagged OK response code or a CAPABILITY command).
	Capabilities []string
	// Mechanism is the SASL mechanism that authenticated.
	Mechanism string
	// POP3 is, for POP3, the wire client the login ran on, to go on with.
	POP3 *pop3.Client

	w *wire
}

// Close closes the connection.
func (s *Session) Close() error { return s.Conn.Close() }

// LoginFunc is LoginIMAP, LoginPOP3 or LoginSMTP.
type LoginFunc func(ctx context.Context, o *Options) (*Session, error)

// For returns the login of a protocol.
func For(p provider.Protocol) LoginFunc {
	switch p {
	case provider.IMAP:
		return LoginIMAP
	case provider.POP3:
		return LoginPOP3
	}
	return LoginSMTP
}

// protocol is one protocol's login on a connected wire, after the
// handshake of implicit TLS; alpn is its ALPN name (RFC 7301), if it has
// one that servers know.
type protocol struct {
	alpn string
	run  func(ctx context.Context, w *wire) (*Session, error)
}

// login is the policy every protocol shares: one attempt, and when the
// server refuses the token, one forced refresh and one more attempt on a
// new connection. Refusals after a refreshed token are final.
func login(ctx context.Context, o *Options, p protocol) (*Session, error) {
	var used string
	s, err := attempt(ctx, o, p, func(ctx context.Context) (string, error) {
		tok, err := o.Token(ctx)
		used = tok
		return tok, err
	})
	var re *ReplyError
	if err == nil || !errors.As(err, &re) || !re.Refused || o.Refresh == nil || (o.Retry != nil && !o.Retry(ctx, re)) {
		return s, err
	}
	fresh, err := o.Refresh(ctx, used)
	if err != nil {
		return nil, &Error{Phase: PhaseToken, Err: err}
	}
	return attempt(ctx, o, p, func(context.Context) (string, error) { return fresh, nil })
}

// attempt dials and logs in once.
func attempt(ctx context.Context, o *Options, p protocol, token func(context.Context) (string, error)) (*Session, error) {
	raw, err := o.dial(ctx)
	if err != nil {
		return nil, &Error{Phase: PhaseConnect, Err: err}
	}
	w := newWire(ctx, raw, o, token)
	var s *Session
	if o.Server.ImplicitTLS {
		var alpn []string
		if p.alpn != "" {
			alpn = []string{p.alpn}
		}
		err = w.handshake(ctx, alpn...)
	}
	if err == nil {
		s, err = p.run(ctx, w)
	}
	w.release()
	if err != nil {
		w.conn.Close()
		return nil, &Error{Phase: w.phase, Err: err}
	}
	if s.Conn == nil {
		s.Conn, s.Reader = w.io, w.r
	}
	s.w = w
	return s, nil
}

func (o *Options) dial(ctx context.Context) (net.Conn, error) {
	if o.Dial != nil {
		return o.Dial(ctx)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", o.Server.Addr())
	if err != nil {
		return nil, err
	}
	if tcp, ok := c.(*net.TCPConn); ok {
		tcp.SetNoDelay(true)
	}
	return c, nil
}
