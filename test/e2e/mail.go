package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"time"
)

// Minimal raw IMAP (RFC 9051), POP3 (RFC 1939, 5034) and SMTP submission (RFC 6409, 4954)
// clients that log in with SASL XOAUTH2 or OAUTHBEARER (RFC 7628), independent of the code
// under test. They send the SASL initial response with the command and, after an error
// challenge, the empty (XOAUTH2) or %x01 (OAUTHBEARER) reply RFC 7628 asks for.

// TLSMode says how a mail connection gets TLS.
type TLSMode int

const (
	// Plain is no TLS: fine on loopback, where Dovecot counts a connection as secured.
	Plain TLSMode = iota
	// StartTLS upgrades with STARTTLS (IMAP, SMTP) or STLS (POP3).
	StartTLS
	// ImplicitTLS starts TLS at once (IMAPS, POP3S, submissions).
	ImplicitTLS
)

// SASL mechanisms.
const (
	XOAUTH2     = "XOAUTH2"
	OAUTHBEARER = "OAUTHBEARER"
)

// mailTimeout bounds a whole exchange when ctx has no deadline. Dovecot takes up to 0.5 s to
// answer a failed authentication.
const mailTimeout = 30 * time.Second

// AuthError is a server's refusal of the authentication. Reply is the server's final line
// (it never contains the token); Temporary is set for a temporary failure (the provider was
// unreachable): IMAP [UNAVAILABLE], POP3 [SYS/TEMP], SMTP 4xx.
type AuthError struct {
	Proto     string
	Reply     string
	Temporary bool
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("%s: authentication refused: %s", e.Proto, e.Reply)
}

// IMAPLogin connects to addr, authenticates user with token and mech, and logs out. tc is
// required for StartTLS and ImplicitTLS (Stack.TLSConfig). A refused login is an *AuthError.
func IMAPLogin(ctx context.Context, addr string, mode TLSMode, tc *tls.Config, user, token, mech string) error {
	c, err := dialMail(ctx, "imap", addr, mode, tc)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.imapSession(addr, mode, tc, user, token, mech); err != nil {
		return err
	}
	return c.imapCommand("z1", "LOGOUT")
}

// IMAPPasswordLogin connects to addr, logs user in with IMAP LOGIN and password (a proxy's
// app password), and logs out. A refused login is an *AuthError, which never holds the
// password.
func IMAPPasswordLogin(ctx context.Context, addr string, mode TLSMode, tc *tls.Config, user, password string) error {
	c, err := dialMail(ctx, "imap", addr, mode, tc)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.imapStart(mode, tc); err != nil {
		return err
	}
	if err := c.send(fmt.Sprintf("a1 LOGIN %q %q", user, password)); err != nil {
		return err
	}
	for {
		l, err := c.line()
		if err != nil {
			return err
		}
		if strings.HasPrefix(l, "a1 ") {
			if !strings.HasPrefix(l, "a1 OK") {
				return &AuthError{Proto: "imap", Reply: strings.TrimPrefix(l, "a1 "), Temporary: strings.Contains(l, "[UNAVAILABLE]")}
			}
			return c.imapCommand("z1", "LOGOUT")
		}
	}
}

// IMAPCapabilities returns the capabilities an IMAP server lists before login (after STARTTLS
// in that mode), e.g. "AUTH=XOAUTH2".
func IMAPCapabilities(ctx context.Context, addr string, mode TLSMode, tc *tls.Config) ([]string, error) {
	c, err := dialMail(ctx, "imap", addr, mode, tc)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := c.imapStart(mode, tc); err != nil {
		return nil, err
	}
	if err := c.send("c1 CAPABILITY"); err != nil {
		return nil, err
	}
	var caps []string
	for {
		l, err := c.line()
		if err != nil {
			return nil, err
		}
		if rest, ok := strings.CutPrefix(l, "* CAPABILITY "); ok {
			caps = strings.Fields(rest)
		}
		if strings.HasPrefix(l, "c1 ") {
			if !strings.HasPrefix(l, "c1 OK") {
				return nil, fmt.Errorf("imap: CAPABILITY: %s", l)
			}
			return caps, nil
		}
	}
}

// POP3Login connects to addr, authenticates (AUTH, RFC 5034) and quits.
func POP3Login(ctx context.Context, addr string, mode TLSMode, tc *tls.Config, user, token, mech string) error {
	c, err := dialMail(ctx, "pop3", addr, mode, tc)
	if err != nil {
		return err
	}
	defer c.close()
	if l, err := c.line(); err != nil {
		return err
	} else if !strings.HasPrefix(l, "+OK") {
		return fmt.Errorf("pop3: greeting: %s", l)
	}
	if mode == StartTLS {
		if err := c.send("STLS"); err != nil {
			return err
		}
		if l, err := c.line(); err != nil {
			return err
		} else if !strings.HasPrefix(l, "+OK") {
			return fmt.Errorf("pop3: STLS: %s", l)
		}
		if err := c.startTLS(tc); err != nil {
			return err
		}
	}
	if err := c.send("AUTH " + mech + " " + saslInitial(mech, user, token, addr)); err != nil {
		return err
	}
	for {
		l, err := c.line()
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(l, "+OK"):
			if err := c.send("QUIT"); err != nil {
				return err
			}
			_, err := c.line()
			return err
		case strings.HasPrefix(l, "+ ") || l == "+":
			if err := c.send(saslErrorReply(mech)); err != nil {
				return err
			}
		default:
			return &AuthError{Proto: "pop3", Reply: l, Temporary: strings.Contains(l, "[SYS/TEMP]")}
		}
	}
}

// SubmissionSend connects to addr, authenticates and, when to is not empty, sends msg from
// user to to (dot-stuffing is done here). With an empty to it only logs in.
func SubmissionSend(ctx context.Context, addr string, mode TLSMode, tc *tls.Config, user, token, mech, to string, msg []byte) error {
	c, err := dialMail(ctx, "smtp", addr, mode, tc)
	if err != nil {
		return err
	}
	defer c.close()
	expect := func(code string) error {
		l, err := c.smtpReply()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(l, code) {
			return fmt.Errorf("smtp: want %s, got %s", code, l)
		}
		return nil
	}
	if err := expect("220"); err != nil {
		return err
	}
	if err := c.send("EHLO client.example.test"); err != nil {
		return err
	}
	if err := expect("250"); err != nil {
		return err
	}
	if mode == StartTLS {
		if err := c.send("STARTTLS"); err != nil {
			return err
		}
		if err := expect("220"); err != nil {
			return err
		}
		if err := c.startTLS(tc); err != nil {
			return err
		}
		if err := c.send("EHLO client.example.test"); err != nil {
			return err
		}
		if err := expect("250"); err != nil {
			return err
		}
	}
	if err := c.send("AUTH " + mech + " " + saslInitial(mech, user, token, addr)); err != nil {
		return err
	}
	for done := false; !done; {
		l, err := c.smtpReply()
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(l, "235"):
			done = true
		case strings.HasPrefix(l, "334"):
			if err := c.send(saslErrorReply(mech)); err != nil {
				return err
			}
		default:
			return &AuthError{Proto: "smtp", Reply: l, Temporary: strings.HasPrefix(l, "4")}
		}
	}
	if to != "" {
		steps := []struct{ cmd, code string }{
			{"MAIL FROM:<" + user + ">", "250"},
			{"RCPT TO:<" + to + ">", "250"},
			{"DATA", "354"},
		}
		for _, st := range steps {
			if err := c.send(st.cmd); err != nil {
				return err
			}
			if err := expect(st.code); err != nil {
				return err
			}
		}
		if _, err := c.w.WriteString(dotStuff(msg)); err != nil {
			return err
		}
		if err := c.send("."); err != nil {
			return err
		}
		if err := expect("250"); err != nil {
			return err
		}
	}
	if err := c.send("QUIT"); err != nil {
		return err
	}
	return expect("221")
}

// NewMessage returns a small RFC 5322 message.
func NewMessage(from, to, subject, body string) []byte {
	return []byte(fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <e2e-%s@example.test>\r\n\r\n%s\r\n",
		from, to, subject, time.Now().UTC().Format(time.RFC1123Z), randomString(), body))
}

// dotStuff turns msg into SMTP DATA: CRLF line ends, leading dots doubled, a final CRLF.
func dotStuff(msg []byte) string {
	s := strings.ReplaceAll(string(msg), "\r\n", "\n")
	s = strings.TrimSuffix(s, "\n")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") {
			lines[i] = "." + l
		}
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}

// saslInitial is the base64 initial response for mech.
func saslInitial(mech, user, token, addr string) string {
	var raw string
	switch mech {
	case OAUTHBEARER:
		host, port, _ := net.SplitHostPort(addr)
		u := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(user)
		raw = "n,a=" + u + ",\x01host=" + host + "\x01port=" + port + "\x01auth=Bearer " + token + "\x01\x01"
	default:
		raw = "user=" + user + "\x01auth=Bearer " + token + "\x01\x01"
	}
	return base64.StdEncoding.EncodeToString([]byte(raw))
}

// saslErrorReply answers a server's error challenge so that it sends its final verdict.
func saslErrorReply(mech string) string {
	if mech == OAUTHBEARER {
		return "AQ==" // %x01
	}
	return ""
}

type mailConn struct {
	proto string
	conn  net.Conn
	r     *bufio.Reader
	w     *bufio.Writer
}

func dialMail(ctx context.Context, proto, addr string, mode TLSMode, tc *tls.Config) (*mailConn, error) {
	if mode != Plain && tc == nil {
		return nil, fmt.Errorf("%s: TLS mode needs a tls.Config", proto)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", proto, err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(mailTimeout)
	}
	conn.SetDeadline(deadline)
	c := &mailConn{proto: proto, conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}
	if mode == ImplicitTLS {
		if err := c.startTLS(tc); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *mailConn) close() { c.conn.Close() }

func (c *mailConn) startTLS(tc *tls.Config) error {
	if c.r.Buffered() > 0 {
		return fmt.Errorf("%s: data after the TLS go-ahead", c.proto)
	}
	tc = tc.Clone()
	if tc.ServerName == "" {
		host, _, _ := net.SplitHostPort(c.conn.RemoteAddr().String())
		tc.ServerName = host
	}
	t := tls.Client(c.conn, tc)
	if err := t.Handshake(); err != nil {
		return fmt.Errorf("%s: TLS: %w", c.proto, err)
	}
	c.conn, c.r, c.w = t, bufio.NewReader(t), bufio.NewWriter(t)
	return nil
}

func (c *mailConn) send(line string) error {
	if _, err := c.w.WriteString(line + "\r\n"); err != nil {
		return fmt.Errorf("%s: %w", c.proto, err)
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("%s: %w", c.proto, err)
	}
	return nil
}

func (c *mailConn) line() (string, error) {
	l, err := c.r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("%s: %w", c.proto, err)
	}
	return strings.TrimRight(l, "\r\n"), nil
}

// smtpReply reads a possibly multi-line reply and returns its last line.
func (c *mailConn) smtpReply() (string, error) {
	for {
		l, err := c.line()
		if err != nil {
			return "", err
		}
		if len(l) < 4 || l[3] != '-' {
			return l, nil
		}
	}
}

// imapStart reads the greeting and does STARTTLS in that mode.
func (c *mailConn) imapStart(mode TLSMode, tc *tls.Config) error {
	l, err := c.line()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(l, "* OK") {
		return fmt.Errorf("imap: greeting: %s", l)
	}
	if mode == StartTLS {
		if err := c.imapCommand("s1", "STARTTLS"); err != nil {
			return err
		}
		return c.startTLS(tc)
	}
	return nil
}

func (c *mailConn) imapSession(addr string, mode TLSMode, tc *tls.Config, user, token, mech string) error {
	if err := c.imapStart(mode, tc); err != nil {
		return err
	}
	if err := c.send("a1 AUTHENTICATE " + mech + " " + saslInitial(mech, user, token, addr)); err != nil {
		return err
	}
	for {
		l, err := c.line()
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(l, "+"):
			if err := c.send(saslErrorReply(mech)); err != nil {
				return err
			}
		case strings.HasPrefix(l, "a1 OK"):
			return nil
		case strings.HasPrefix(l, "a1 "):
			return &AuthError{Proto: "imap", Reply: strings.TrimPrefix(l, "a1 "), Temporary: strings.Contains(l, "[UNAVAILABLE]")}
		}
	}
}

// imapCommand sends one command and waits for its tagged OK.
func (c *mailConn) imapCommand(tag, cmd string) error {
	if err := c.send(tag + " " + cmd); err != nil {
		return err
	}
	for {
		l, err := c.line()
		if err != nil {
			return err
		}
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				return fmt.Errorf("imap: %s: %s", cmd, l)
			}
			return nil
		}
	}
}
