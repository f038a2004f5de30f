package smtpproxy

import (
	"errors"
	"strings"

	"github.com/mailkey/mailkey/internal/proxy"
)

// AUTH LOGIN prompts: base64 of "Username:" and "Password:".
const (
	promptUser = "334 VXNlcm5hbWU6"
	promptPass = "334 UGFzc3dvcmQ6"
)

var errCancelled = errors.New("authentication cancelled")

// auth runs AUTH PLAIN or AUTH LOGIN (RFC 4954), each with or without an
// initial response; "*" cancels at any prompt.
func (c *conn) auth(arg string) (bool, error) {
	if c.ehlo == "" {
		return false, c.bad("503 5.5.1 Send EHLO first")
	}
	mech, ir, hasIR := strings.Cut(arg, " ")
	if mech == "" || hasIR && (ir == "" || strings.Contains(ir, " ")) {
		return false, c.bad("501 5.5.4 Syntax: AUTH mechanism [initial-response]")
	}
	mech = strings.ToUpper(mech)
	if mech != "PLAIN" && mech != "LOGIN" {
		return false, c.s.Reply("504 5.5.4 Unrecognized authentication type")
	}
	if !c.s.PlainAuthAllowed() {
		return false, c.s.Reply("538 5.7.11 Encryption required for requested authentication mechanism")
	}

	var user, pass string
	var ok bool
	var err error
	if mech == "PLAIN" {
		user, pass, ok, err = c.plain(ir, hasIR)
	} else {
		user, pass, ok, err = c.login(ir, hasIR)
	}
	if err != nil || !ok {
		return false, err
	}

	up, err := c.s.Login(user, pass, c.ehlo)
	if err != nil {
		f := proxy.Classify(err)
		switch {
		case f.Auth:
			return false, c.s.Reply("535 5.7.8 " + f.Message)
		case f.Local:
			return false, c.s.Reply("554 5.3.0 " + f.Message) // RFC 3463: a permanent fault of the system
		}
		return false, c.s.Reply("454 4.7.0 " + f.Message)
	}
	return true, c.s.Splice(up, "235 2.7.0 Authentication successful")
}

// plain reads a PLAIN response. ok is false when the exchange was refused
// and already answered.
func (c *conn) plain(ir string, hasIR bool) (user, pass string, ok bool, err error) {
	resp, err := c.response(ir, hasIR, "334 ")
	if err != nil {
		return "", "", false, c.answer(err)
	}
	user, pass, err = proxy.ParsePlain(resp)
	switch {
	case errors.Is(err, proxy.ErrAuthzid):
		return "", "", false, c.s.Reply("535 5.7.8 Cannot act as another user")
	case err != nil:
		return "", "", false, c.bad("501 5.5.2 Malformed PLAIN response")
	}
	return user, pass, true, nil
}

// login runs the two AUTH LOGIN prompts; an initial response is the user
// name and skips the first.
func (c *conn) login(ir string, hasIR bool) (user, pass string, ok bool, err error) {
	u, err := c.response(ir, hasIR, promptUser)
	if err != nil {
		return "", "", false, c.answer(err)
	}
	p, err := c.response("", false, promptPass)
	if err != nil {
		return "", "", false, c.answer(err)
	}
	if len(u) == 0 || len(p) == 0 {
		return "", "", false, c.bad("501 5.5.2 Empty user name or password")
	}
	return string(u), string(p), true, nil
}

// response returns the decoded initial response, or prompts and reads one.
func (c *conn) response(ir string, hasIR bool, prompt string) ([]byte, error) {
	line := []byte(ir)
	if !hasIR {
		if err := c.s.Reply(prompt); err != nil {
			return nil, err
		}
		var err error
		if line, err = c.s.ReadLine(); err != nil {
			return nil, err
		}
		if string(line) == "*" {
			return nil, errCancelled
		}
	}
	return proxy.DecodeResponse(line)
}

// answer replies to a failed SASL exchange and returns the error that ends
// the session, if any.
func (c *conn) answer(err error) error {
	switch {
	case errors.Is(err, errCancelled):
		return c.s.Reply("501 5.7.0 Authentication cancelled")
	case errors.Is(err, proxy.ErrBadBase64):
		return c.bad("501 5.5.2 Cannot decode response")
	case errors.Is(err, proxy.ErrLineTooLong):
		c.s.Reply("500 5.5.2 Line too long")
	case proxy.IsTimeout(err):
		c.s.Reply("421 4.4.2 " + c.s.Hostname() + " Timeout, closing connection")
	}
	return err
}
