package pop3proxy

import (
	"errors"
	"strings"

	"github.com/mailkey/mailkey/internal/proxy"
)

const errPrivacy = "-ERR Plaintext authentication is disabled here, use STLS first"

// userCmd runs USER name (RFC 1939 §7).
func (c *conn) userCmd(arg string) (bool, error) {
	c.user = ""
	if arg == "" {
		return false, c.bad("-ERR USER takes a user name")
	}
	if !c.s.PlainAuthAllowed() {
		return false, c.s.Reply(errPrivacy)
	}
	c.user = arg
	return false, c.s.Reply("+OK Send your password")
}

// pass runs PASS password, after USER.
func (c *conn) pass(arg string) (bool, error) {
	user := c.user
	c.user = ""
	if user == "" {
		return false, c.bad("-ERR USER first")
	}
	if arg == "" {
		return false, c.bad("-ERR PASS takes a password")
	}
	return c.finishLogin(user, arg)
}

// auth runs AUTH (RFC 5034): without arguments it lists the mechanisms;
// AUTH PLAIN takes an initial response or answers a "+ " continuation,
// where "*" cancels.
func (c *conn) auth(arg string) (bool, error) {
	if arg == "" {
		return false, c.s.Reply("+OK", "PLAIN", ".")
	}
	mech, ir, hasIR := strings.Cut(arg, " ")
	if !strings.EqualFold(mech, "PLAIN") {
		return false, c.s.Reply("-ERR Unsupported authentication mechanism")
	}
	if hasIR && (ir == "" || strings.Contains(ir, " ")) {
		return false, c.bad("-ERR Invalid initial response")
	}
	if !c.s.PlainAuthAllowed() {
		return false, c.s.Reply(errPrivacy)
	}
	resp := []byte(ir)
	if !hasIR {
		if err := c.s.Reply("+ "); err != nil {
			return false, err
		}
		line, err := c.s.ReadLine()
		if err != nil {
			if errors.Is(err, proxy.ErrLineTooLong) {
				c.s.Reply("-ERR Line too long")
			}
			return false, err
		}
		if string(line) == "*" {
			return false, c.s.Reply("-ERR Authentication cancelled")
		}
		resp = line
	}
	dec, err := proxy.DecodeResponse(resp)
	if err != nil {
		return false, c.bad("-ERR Invalid base64 in SASL response")
	}
	user, pass, err := proxy.ParsePlain(dec)
	switch {
	case errors.Is(err, proxy.ErrAuthzid):
		return false, c.s.Reply("-ERR [AUTH] Cannot act as another user")
	case err != nil:
		return false, c.bad("-ERR Malformed PLAIN response")
	}
	return c.finishLogin(user, pass)
}

// finishLogin authenticates, dials upstream and, on success, relays the
// session. Failures use RFC 3206 codes: [AUTH] for refused credentials,
// [SYS/PERM] for a fault of mailkey's own data that retrying will not
// mend, [SYS/TEMP] for anything worth retrying.
func (c *conn) finishLogin(user, pass string) (bool, error) {
	up, err := c.s.Login(user, pass, "")
	if err != nil {
		f := proxy.Classify(err)
		code := "[SYS/TEMP]"
		switch {
		case f.Auth:
			code = "[AUTH]"
		case f.Local:
			code = "[SYS/PERM]" // RFC 3206 §4
		}
		return false, c.s.Reply("-ERR " + code + " " + f.Message)
	}
	return true, c.s.Splice(up, "+OK Logged in")
}
