package upstream

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	gosasl "github.com/emersion/go-sasl"

	"github.com/mailkey/mailkey/internal/readahead"
	"github.com/mailkey/mailkey/internal/sasl"
)

// maxLine bounds one line a server sends before or during its login: a
// CAPABILITY list or a SASL challenge. The relay after login has no such
// limit.
const maxLine = 64 << 10

// maxLines bounds the lines of one pre-login response (an SMTP EHLO reply,
// untagged IMAP responses).
const maxLines = 1000

// maxQuoted bounds how much of a server's line goes into an error.
const maxQuoted = 200

var (
	errLineTooLong = errors.New("upstream line too long")
	errTooManyLine = errors.New("upstream response too long")
)

// Redacted stands in a transcript for the token and the initial response.
const Redacted = "<redacted>"

// Direction says which way a transcript line went.
type Direction byte

const (
	Sent     Direction = 'C' // from mailkey (the client)
	Received Direction = 'S' // from the server
	Note     Direction = '-' // commentary, such as the start of a TLS handshake
)

// wire is one connection during its login.
type wire struct {
	o       *Options
	token   func(context.Context) (string, error)
	phase   Phase // where the login is
	raw     net.Conn
	conn    net.Conn // raw, or TLS over it
	io      net.Conn // conn, or a transcript tap over it
	r       *bufio.Reader
	stop    func() bool
	secrets *secrets
}

// newWire takes over a connected socket. Deadlines come from ctx until
// release.
func newWire(ctx context.Context, raw net.Conn, o *Options, token func(context.Context) (string, error)) *wire {
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	// A deadline in the past wakes up every blocked Read and Write.
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	w := &wire{o: o, token: token, phase: PhaseTLS, raw: raw, conn: raw, stop: stop, secrets: &secrets{}}
	w.io = w.tap(raw)
	w.r = bufio.NewReaderSize(w.io, 4<<10)
	return w
}

// release clears the deadlines: the session is the caller's now.
func (w *wire) release() {
	w.stop()
	w.raw.SetDeadline(time.Time{})
}

// handshake runs TLS over the socket. alpn, when set, is the protocol
// offered by ALPN.
func (w *wire) handshake(ctx context.Context, alpn ...string) error {
	cfg := w.o.TLS.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = w.o.Server.Host
	}
	if len(alpn) > 0 {
		cfg.NextProtos = alpn
	}
	c := tls.Client(readahead.Wrap(w.raw), cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	w.conn = c
	w.io = w.tap(c)
	w.r = bufio.NewReaderSize(w.io, 4<<10)
	return nil
}

// startTLS upgrades after the server's go-ahead, refusing bytes it sent
// early.
func (w *wire) startTLS(ctx context.Context) error {
	if w.r.Buffered() > 0 {
		return ErrBufferedBeforeTLS
	}
	return w.upgrade(ctx)
}

// upgrade runs the handshake of STARTTLS.
func (w *wire) upgrade(ctx context.Context) error {
	w.note("TLS handshake")
	return w.handshake(ctx)
}

// secured ends the TLS phase.
func (w *wire) secured() {
	if t := w.o.Trace; t != nil && t.Secured != nil {
		if tc, ok := w.conn.(*tls.Conn); ok {
			t.Secured(tc.ConnectionState())
		}
	}
	w.phase = PhaseCapabilities
}

// start reports the capabilities, picks the mechanism from what the
// server offers, gets the token and starts the SASL client: it returns the
// mechanism, the client and its initial response, which from now on is
// never shown.
func (w *wire) start(ctx context.Context, offer Capabilities) (string, gosasl.Client, []byte, error) {
	if t := w.o.Trace; t != nil && t.Offered != nil {
		t.Offered(offer)
	}
	mech, err := sasl.Choose(offer.Mechanisms, w.o.SASL)
	if err != nil {
		return "", nil, nil, err
	}
	w.phase = PhaseToken
	tok, err := w.token(ctx)
	if err != nil {
		return "", nil, nil, err
	}
	w.phase = PhaseAuthenticate
	var c gosasl.Client
	if mech == sasl.OAuthBearer {
		srv := w.o.Server
		c = sasl.NewOAuthBearerClient(&gosasl.OAuthBearerOptions{Username: w.o.User, Token: tok, Host: srv.Host, Port: srv.Port})
	} else {
		c = sasl.NewXOAUTH2Client(w.o.User, tok)
	}
	_, ir, err := c.Start()
	if err != nil {
		return "", nil, nil, err
	}
	w.secrets.add(tok, base64.StdEncoding.EncodeToString(ir))
	return mech, c, ir, nil
}

// answer hands a base64 challenge to the SASL client and sends its
// response; when the client has none, the exchange is cancelled with "*"
// (RFC 4954 §4, RFC 9051 §6.2.2) and the client's error returned.
func (w *wire) answer(c gosasl.Client, challenge string) error {
	ch, err := base64.StdEncoding.DecodeString(strings.TrimSpace(challenge))
	var resp []byte
	if err == nil {
		resp, err = c.Next(ch)
	} else {
		err = errors.New("sasl challenge is not base64")
	}
	if err != nil {
		w.send("*")
		return err
	}
	return w.send(base64.StdEncoding.EncodeToString(resp))
}

// failure returns the SASL error challenge the client kept, if any.
func failure(c gosasl.Client) *sasl.Failure {
	if fr, ok := c.(sasl.FailureReporter); ok {
		return fr.Failure()
	}
	return nil
}

// line reads one line without its line ending.
func (w *wire) line() (string, error) {
	var b []byte
	for {
		frag, err := w.r.ReadSlice('\n')
		if len(b)+len(frag) > maxLine {
			return "", errLineTooLong
		}
		b = append(b, frag...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			return "", err
		}
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// send writes one command line.
func (w *wire) send(line string) error {
	_, err := w.io.Write([]byte(line + "\r\n"))
	return err
}

// quote makes a server line safe for logs and client messages: no control
// characters, no secret, bounded.
func (w *wire) quote(s string) string {
	s = w.secrets.redact(s, "[redacted]")
	if len(s) > maxQuoted {
		s = s[:maxQuoted] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func (w *wire) note(s string) {
	if w.o.Transcript != nil {
		w.o.Transcript(Note, s)
	}
}

// secrets are the values no line shown or quoted may hold.
type secrets struct {
	mu     sync.Mutex
	values []string
}

func (s *secrets) add(values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		if v != "" {
			s.values = append(s.values, v)
		}
	}
}

func (s *secrets) redact(line, with string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.values {
		line = strings.ReplaceAll(line, v, with)
	}
	return line
}

// tap wraps c so that the transcript sees its lines; without a transcript
// it is c itself.
func (w *wire) tap(c net.Conn) net.Conn {
	if w.o.Transcript == nil {
		return c
	}
	return &tap{Conn: c, out: w.o.Transcript, secrets: w.secrets}
}

// maxTapLine: a line without end is shown in pieces this long.
const maxTapLine = 64 << 10

// tap is a connection whose plain text goes to a transcript, line by
// line, secrets redacted. It sits over TLS, never under it: the handshake
// and the records are not shown.
type tap struct {
	net.Conn
	out     func(Direction, string)
	secrets *secrets
	mu      sync.Mutex
	partial [2]bytes.Buffer // sent, received
}

func (c *tap) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.feed(Received, b[:n])
	return n, err
}

func (c *tap) Write(b []byte) (int, error) {
	c.feed(Sent, b)
	return c.Conn.Write(b)
}

func (c *tap) feed(dir Direction, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	buf := &c.partial[0]
	if dir == Received {
		buf = &c.partial[1]
	}
	buf.Write(b)
	for {
		i := bytes.IndexByte(buf.Bytes(), '\n')
		if i < 0 {
			if buf.Len() > maxTapLine {
				c.out(dir, c.secrets.redact(buf.String(), Redacted))
				buf.Reset()
			}
			return
		}
		line := strings.TrimRight(string(buf.Next(i+1)), "\r\n")
		c.out(dir, c.secrets.redact(line, Redacted))
	}
}
