// Package imapproxy is the IMAP side of the mailkey proxy: the
// not-authenticated state of RFC 9051 / RFC 3501, answered by mailkey
// itself, until the client logs in with an app password; then the session
// is relayed to the upstream server.
//
// Before login it understands CAPABILITY, NOOP, ID (RFC 2971), STARTTLS
// (RFC 2595), LOGIN with atoms, quoted strings and literals, synchronizing
// or not (RFC 7888 LITERAL+), AUTHENTICATE PLAIN with or without an initial
// response (RFC 4959 SASL-IR, RFC 4616) and LOGOUT. Anything else is refused
// with BAD, and too many refusals close the connection. Response codes
// follow RFC 5530.
package imapproxy

import (
	"errors"
	"strings"
	"time"

	"github.com/mailkey/mailkey/internal/proxy"
)

// autologout is the idle timeout after login; RFC 9051 §5.4 asks at least
// 30 minutes, and IDLE clients re-issue IDLE within 29.
const autologout = 30 * time.Minute

// Protocol is the IMAP proxy.Protocol.
type Protocol struct{}

var _ proxy.Protocol = Protocol{}

// Name implements proxy.Protocol.
func (Protocol) Name() string { return proxy.IMAP }

// DefaultIdleTimeout implements proxy.Protocol.
func (Protocol) DefaultIdleTimeout() time.Duration { return autologout }

// Busy implements proxy.Protocol.
func (Protocol) Busy(string) string {
	return "* BYE [UNAVAILABLE] Too many connections from your address"
}

// Serve implements proxy.Protocol.
func (Protocol) Serve(s *proxy.Session) error {
	c := &conn{s: s}
	return c.serve()
}

// conn is one client's pre-login state.
type conn struct {
	s *proxy.Session
}

// ReadLine, ReadFull and Continue make conn a parser source.
func (c *conn) ReadLine() ([]byte, error)      { return c.s.ReadLine() }
func (c *conn) ReadFull(n int) ([]byte, error) { return c.s.ReadFull(n) }
func (c *conn) Continue() error                { return c.s.Reply("+ Ready for literal data") }

// capabilities are mailkey's own, before login.
func (c *conn) capabilities() string {
	caps := []string{"IMAP4rev1", "SASL-IR", "LITERAL+", "ID"}
	if c.s.TLSAvailable() {
		caps = append(caps, "STARTTLS")
	}
	if c.s.PlainAuthAllowed() {
		caps = append(caps, "AUTH=PLAIN")
	} else {
		caps = append(caps, "LOGINDISABLED")
	}
	return strings.Join(caps, " ")
}

func (c *conn) serve() error {
	if err := c.s.Reply("* OK [CAPABILITY " + c.capabilities() + "] mailkey ready"); err != nil {
		return err
	}
	for {
		cmd, err := readCommand(c, c.s.Limits().MaxLine)
		if err != nil {
			var se *syntaxError
			switch {
			case errors.As(err, &se):
				text := se.msg
				if se.code != "" {
					text = "[" + se.code + "] " + text
				}
				if se.fatal {
					c.s.SetOutcome(proxy.OutcomeProtocolViolated)
					c.s.Reply("* BYE " + text)
					return err
				}
				if err := c.bad(se.tag + " BAD " + text); err != nil {
					return err
				}
				continue
			case errors.Is(err, proxy.ErrLineTooLong):
				c.s.Reply("* BYE [TOOBIG] Line too long")
			case proxy.IsTimeout(err):
				c.s.Reply("* BYE Autologout; idle for too long")
			}
			return err
		}
		done, err := c.dispatch(cmd)
		if done || err != nil {
			return err
		}
	}
}

// bad refuses a command and closes the connection after too many.
func (c *conn) bad(reply string) error {
	if err := c.s.Reply(reply); err != nil {
		return err
	}
	if err := c.s.BadCommand(); err != nil {
		c.s.Reply("* BYE Too many invalid commands")
		return err
	}
	return nil
}

// dispatch runs one command; done means the session is over (logged out,
// or logged in and relayed).
func (c *conn) dispatch(cmd *command) (done bool, err error) {
	t := cmd.tag
	switch cmd.name {
	case "CAPABILITY":
		if len(cmd.args) != 0 {
			return false, c.bad(t + " BAD CAPABILITY takes no arguments")
		}
		return false, c.s.Reply("* CAPABILITY "+c.capabilities(), t+" OK CAPABILITY completed")
	case "NOOP":
		if len(cmd.args) != 0 {
			return false, c.bad(t + " BAD NOOP takes no arguments")
		}
		return false, c.s.Reply(t + " OK NOOP completed")
	case "ID":
		if !validID(cmd.args) {
			return false, c.bad(t + " BAD Invalid ID arguments")
		}
		return false, c.s.Reply(`* ID ("name" "mailkey")`, t+" OK ID completed")
	case "LOGOUT":
		if len(cmd.args) != 0 {
			return false, c.bad(t + " BAD LOGOUT takes no arguments")
		}
		c.s.SetOutcome(proxy.OutcomeQuit)
		return true, c.s.Reply("* BYE Logging out", t+" OK LOGOUT completed")
	case "STARTTLS":
		return c.starttls(cmd)
	case "LOGIN":
		return c.login(cmd)
	case "AUTHENTICATE":
		return c.authenticate(cmd)
	}
	return false, c.bad(t + " BAD Command unknown or not allowed before login")
}

// validID accepts ID's single argument: NIL or a parenthesised list
// (RFC 2971 §3.1); the client's values are not used.
func validID(args []token) bool {
	if len(args) == 1 {
		return args[0].kind == tokAtom && strings.EqualFold(args[0].val, "NIL")
	}
	depth := 0
	for i, a := range args {
		switch a.kind {
		case tokOpen:
			depth++
		case tokClose:
			depth--
		}
		if depth == 0 && i != len(args)-1 || depth < 0 {
			return false
		}
	}
	return len(args) >= 2 && args[0].kind == tokOpen
}
