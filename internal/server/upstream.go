package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/sasl"
)

// maxUpstreamLine bounds one line an upstream sends before or during its
// login: a CAPABILITY list or a SASL challenge. The relay after login has
// no such limit.
const maxUpstreamLine = 64 << 10

// maxUpstreamLines bounds the lines of one pre-login response (an SMTP
// EHLO reply, a POP3 CAPA listing, untagged IMAP responses).
const maxUpstreamLines = 1000

var (
	errLineTooLong = errors.New("upstream line too long")
	errTooManyLine = errors.New("upstream response too long")
	// errBufferedBeforeTLS reports bytes the server sent after its
	// STARTTLS go-ahead, before the handshake: they could be injected by a
	// man in the middle (CVE-2011-0411 and kin), so the connection is
	// dropped.
	errBufferedBeforeTLS = errors.New("server sent data after its starttls reply, before tls (possible injection)")
)

// refusedError is an upstream refusal of the token itself: after one
// forced refresh, the login is retried on a new connection.
type refusedError struct {
	Reply   string        // the server's final line, sanitized and redacted
	Failure *sasl.Failure // the SASL error challenge, if any
}

func (e *refusedError) Error() string {
	s := "server refused the token: " + e.Reply
	if e.Failure != nil {
		s += " (" + e.Failure.String() + ")"
	}
	return s
}

// replyError is any other failure the server answered with: temporary
// (IMAP [UNAVAILABLE], POP3 [SYS/TEMP], SMTP 4xx) or not.
type replyError struct {
	Step      string // what was being done: greeting, starttls, capability, auth
	Reply     string
	Temporary bool
}

func (e *replyError) Error() string { return e.Step + ": server answered: " + e.Reply }

// wire is an upstream connection during its login.
type wire struct {
	raw     net.Conn
	conn    net.Conn // raw, or TLS over it
	r       *bufio.Reader
	secrets []string // never quoted in errors
}

// dialWire connects to srv and, for implicit TLS, runs the handshake.
// Deadlines come from ctx and are cleared by release.
func dialWire(ctx context.Context, srv provider.Server, tc *tls.Config) (*wire, func(), error) {
	var d net.Dialer
	addr := net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port))
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		tcp.SetNoDelay(true)
	}
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	release := func() {
		stop()
		raw.SetDeadline(time.Time{})
	}
	w := &wire{raw: raw, conn: raw}
	if srv.ImplicitTLS {
		if err := w.handshake(ctx, tc); err != nil {
			release()
			raw.Close()
			return nil, nil, err
		}
	}
	w.r = bufio.NewReaderSize(w.conn, 4<<10)
	return w, release, nil
}

func (w *wire) handshake(ctx context.Context, tc *tls.Config) error {
	c := tls.Client(withReadAhead(w.raw), tc)
	if err := c.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	w.conn = c
	return nil
}

// startTLS upgrades after the server's go-ahead, refusing bytes it sent
// early.
func (w *wire) startTLS(ctx context.Context, tc *tls.Config) error {
	if w.r.Buffered() > 0 {
		return errBufferedBeforeTLS
	}
	if err := w.handshake(ctx, tc); err != nil {
		return err
	}
	w.r = bufio.NewReaderSize(w.conn, 4<<10)
	return nil
}

func (w *wire) close() { w.conn.Close() }

// line reads one line without its line ending.
func (w *wire) line() (string, error) {
	var b []byte
	for {
		frag, err := w.r.ReadSlice('\n')
		if len(b)+len(frag) > maxUpstreamLine {
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

// send writes one command line. Lines holding a secret are never logged
// or quoted.
func (w *wire) send(line string) error {
	_, err := w.conn.Write([]byte(line + "\r\n"))
	return err
}

// quote makes a server line safe for logs and client messages: no control
// characters, no secret, bounded.
func (w *wire) quote(s string) string {
	for _, sec := range w.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	const maxQuoted = 200
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

// saslStart returns the mechanism's initial response in base64 and
// remembers the secrets for redaction.
func (w *wire) saslStart(mech, user, token string, srv provider.Server) (string, error) {
	ir, err := sasl.InitialResponseBase64(mech, user, token, srv.Host, srv.Port)
	if err != nil {
		return "", err
	}
	w.secrets = append(w.secrets, token, ir)
	return ir, nil
}

// saslAbort is the answer to an error challenge (RFC 7628 §3.2.3): an
// empty response for XOAUTH2, a single %x01 for OAUTHBEARER.
func saslAbort(mech string) string {
	if mech == sasl.OAuthBearer {
		return base64.StdEncoding.EncodeToString([]byte{1})
	}
	return ""
}

// failure decodes an error challenge for logs; nil when it is not one.
func failure(challenge string) *sasl.Failure {
	f, err := sasl.DecodeFailure([]byte(challenge))
	if err != nil {
		return nil
	}
	return f
}
