// Package pop3proxy is the POP3 side of the mailkey proxy: the
// AUTHORIZATION state of RFC 1939, answered by mailkey itself, until the
// client logs in with an app password; then the session is relayed to the
// upstream server.
//
// Before login it understands CAPA (RFC 2449), STLS (RFC 2595), USER/PASS,
// AUTH PLAIN with or without an initial response (RFC 5034, RFC 4616) and
// QUIT. Anything else is refused, and too many refusals close the
// connection. Failures carry RFC 2449/3206 response codes.
package pop3proxy

import (
	"errors"
	"time"

	"github.com/mailkey/mailkey/internal/proxy"
)

// autologout is the idle timeout after login (RFC 1939 §3: at least 10
// minutes).
const autologout = 10 * time.Minute

// Protocol is the POP3 proxy.Protocol.
type Protocol struct{}

var _ proxy.Protocol = Protocol{}

// Name implements proxy.Protocol.
func (Protocol) Name() string { return proxy.POP3 }

// DefaultIdleTimeout implements proxy.Protocol.
func (Protocol) DefaultIdleTimeout() time.Duration { return autologout }

// Busy implements proxy.Protocol.
func (Protocol) Busy(string) string {
	return "-ERR [SYS/TEMP] Too many connections from your address"
}

// Serve implements proxy.Protocol.
func (Protocol) Serve(s *proxy.Session) error {
	c := &conn{s: s}
	return c.serve()
}

// conn is one client's AUTHORIZATION state.
type conn struct {
	s    *proxy.Session
	user string // from USER, waiting for PASS
}

func (c *conn) capabilities() []string {
	caps := []string{"+OK Capability list follows"}
	if c.s.TLSAvailable() {
		caps = append(caps, "STLS")
	}
	if c.s.PlainAuthAllowed() {
		caps = append(caps, "USER", "SASL PLAIN")
	}
	return append(caps, "RESP-CODES", "AUTH-RESP-CODE", "IMPLEMENTATION mailkey", ".")
}

func (c *conn) serve() error {
	if err := c.s.Reply("+OK mailkey ready"); err != nil {
		return err
	}
	for {
		line, err := c.s.ReadLine()
		if err != nil {
			if errors.Is(err, proxy.ErrLineTooLong) {
				c.s.Reply("-ERR Line too long")
			}
			return err
		}
		kw, arg, err := parseCommand(line)
		if err != nil {
			if err := c.bad("-ERR Invalid command"); err != nil {
				return err
			}
			continue
		}
		done, err := c.dispatch(kw, arg)
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
		c.s.Reply("-ERR Too many invalid commands")
		return err
	}
	return nil
}

func (c *conn) dispatch(kw, arg string) (done bool, err error) {
	switch kw {
	case "CAPA":
		if arg != "" {
			return false, c.bad("-ERR CAPA takes no arguments")
		}
		return false, c.s.Reply(c.capabilities()...)
	case "STLS":
		return c.stls(arg)
	case "USER":
		return c.userCmd(arg)
	case "PASS":
		return c.pass(arg)
	case "AUTH":
		return c.auth(arg)
	case "QUIT":
		c.s.SetOutcome(proxy.OutcomeQuit)
		return true, c.s.Reply("+OK Bye")
	}
	return false, c.bad("-ERR Command unknown or not allowed before login")
}
