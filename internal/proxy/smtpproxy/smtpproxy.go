// Package smtpproxy is the SMTP submission side of the mailkey proxy: the
// session up to AUTH (RFC 5321, RFC 4954), answered by mailkey itself; once
// the client has logged in with an app password the session is relayed to
// an upstream session that has already been greeted with the client's own
// EHLO and authenticated.
//
// Before login it understands EHLO, HELO, STARTTLS (RFC 3207), AUTH PLAIN
// and AUTH LOGIN, each with or without an initial response, RSET, NOOP and
// QUIT. Mail commands are refused with 530, anything else with 500, and too
// many refusals close the connection. Replies carry enhanced status codes
// (RFC 2034, RFC 3463).
//
// The EHLO reply is written before any upstream is known, and the client
// keeps believing it after AUTH, so it lists only what every submission
// server mailkey targets offers: PIPELINING, 8BITMIME and
// ENHANCEDSTATUSCODES, plus STARTTLS and AUTH PLAIN LOGIN when they apply.
// SIZE, SMTPUTF8, CHUNKING and DSN are left out; a client that wants them
// sends EHLO again after AUTH, which is relayed and answered by the
// upstream.
package smtpproxy

import (
	"errors"
	"time"

	"github.com/mailkey/mailkey/internal/proxy"
)

// idleTimeout is the idle timeout after login: RFC 5321 §4.5.3.2.7 asks a
// server to wait 5 minutes for the next command; the DATA terminator wait
// is 10 minutes, which the relay's two-way activity check covers.
const idleTimeout = 10 * time.Minute

// Protocol is the SMTP proxy.Protocol.
type Protocol struct{}

var _ proxy.Protocol = Protocol{}

// Name implements proxy.Protocol.
func (Protocol) Name() string { return proxy.SMTP }

// DefaultIdleTimeout implements proxy.Protocol.
func (Protocol) DefaultIdleTimeout() time.Duration { return idleTimeout }

// Busy implements proxy.Protocol.
func (Protocol) Busy(hostname string) string {
	return "421 4.7.0 " + hostname + " Too many connections from your address, try again later"
}

// Serve implements proxy.Protocol.
func (Protocol) Serve(s *proxy.Session) error {
	c := &conn{s: s}
	return c.serve()
}

// conn is one client's state before AUTH.
type conn struct {
	s    *proxy.Session
	ehlo string // the last EHLO or HELO line as sent; empty before one
}

func (c *conn) serve() error {
	host := c.s.Hostname()
	if err := c.s.Reply("220 " + host + " ESMTP mailkey ready"); err != nil {
		return err
	}
	for {
		line, err := c.s.ReadLine()
		if err != nil {
			switch {
			case errors.Is(err, proxy.ErrLineTooLong):
				c.s.Reply("500 5.5.2 Line too long")
			case proxy.IsTimeout(err):
				c.s.Reply("421 4.4.2 " + host + " Timeout, closing connection")
			}
			return err
		}
		verb, arg, err := parseCommand(line)
		if err != nil {
			if err := c.bad("500 5.5.2 Syntax error, command unrecognized"); err != nil {
				return err
			}
			continue
		}
		done, err := c.dispatch(verb, arg, string(line))
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
		c.s.Reply("421 4.7.0 " + c.s.Hostname() + " Too many errors, closing connection")
		return err
	}
	return nil
}

func (c *conn) dispatch(verb, arg, line string) (done bool, err error) {
	switch verb {
	case "EHLO", "HELO":
		if !validDomain(arg) {
			return false, c.bad("501 5.5.4 " + verb + " needs a domain or address literal")
		}
		c.ehlo = line
		if verb == "HELO" {
			return false, c.s.Reply("250 " + c.s.Hostname())
		}
		return false, c.s.Reply(c.extensions()...)
	case "STARTTLS":
		return c.starttls(arg)
	case "AUTH":
		return c.auth(arg)
	case "RSET", "NOOP":
		return false, c.s.Reply("250 2.0.0 OK")
	case "QUIT":
		c.s.SetOutcome(proxy.OutcomeQuit)
		return true, c.s.Reply("221 2.0.0 Bye")
	case "MAIL", "RCPT", "DATA", "BDAT", "VRFY", "EXPN", "ETRN":
		return false, c.bad("530 5.7.0 Authentication required")
	}
	return false, c.bad("500 5.5.2 Command unknown or not allowed before login")
}

// extensions is the EHLO reply; see the package documentation for why it
// is this short.
func (c *conn) extensions() []string {
	lines := []string{c.s.Hostname() + " Hello", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"}
	if c.s.TLSAvailable() {
		lines = append(lines, "STARTTLS")
	}
	if c.s.PlainAuthAllowed() {
		lines = append(lines, "AUTH PLAIN LOGIN")
	}
	for i := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		lines[i] = "250" + sep + lines[i]
	}
	return lines
}
