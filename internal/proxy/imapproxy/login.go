package imapproxy

import (
	"errors"
	"strings"

	"github.com/mailkey/mailkey/internal/proxy"
)

// login runs LOGIN userid password.
func (c *conn) login(cmd *command) (bool, error) {
	t := cmd.tag
	if len(cmd.args) != 2 {
		return false, c.bad(t + " BAD LOGIN takes a user name and a password")
	}
	user, ok1 := cmd.args[0].astring()
	pass, ok2 := cmd.args[1].astring()
	if !ok1 || !ok2 {
		return false, c.bad(t + " BAD LOGIN takes a user name and a password")
	}
	if !c.s.PlainAuthAllowed() {
		return false, c.s.Reply(t + " NO [PRIVACYREQUIRED] Use STARTTLS first")
	}
	return c.finishLogin(t, user, pass)
}

// authenticate runs AUTHENTICATE PLAIN, with an initial response (RFC 4959)
// or after a "+ " continuation; "*" cancels.
func (c *conn) authenticate(cmd *command) (bool, error) {
	t := cmd.tag
	if len(cmd.args) < 1 || len(cmd.args) > 2 || cmd.args[0].kind != tokAtom {
		return false, c.bad(t + " BAD AUTHENTICATE takes a mechanism and an optional initial response")
	}
	if !strings.EqualFold(cmd.args[0].val, "PLAIN") {
		return false, c.s.Reply(t + " NO [CANNOT] Unsupported authentication mechanism")
	}
	if !c.s.PlainAuthAllowed() {
		return false, c.s.Reply(t + " NO [PRIVACYREQUIRED] Use STARTTLS first")
	}
	var resp []byte
	if len(cmd.args) == 2 {
		if cmd.args[1].kind != tokAtom {
			return false, c.bad(t + " BAD Invalid initial response")
		}
		resp = []byte(cmd.args[1].val)
	} else {
		if err := c.s.Reply("+ "); err != nil {
			return false, err
		}
		line, err := c.s.ReadLine()
		if err != nil {
			if errors.Is(err, proxy.ErrLineTooLong) {
				c.s.Reply("* BYE [TOOBIG] Line too long")
			}
			return false, err
		}
		if string(line) == "*" {
			return false, c.s.Reply(t + " BAD Authentication cancelled")
		}
		resp = line
	}
	dec, err := proxy.DecodeResponse(resp)
	if err != nil {
		return false, c.bad(t + " BAD Invalid base64 in SASL response")
	}
	user, pass, err := proxy.ParsePlain(dec)
	switch {
	case errors.Is(err, proxy.ErrAuthzid):
		return false, c.s.Reply(t + " NO [AUTHORIZATIONFAILED] Cannot act as another user")
	case err != nil:
		return false, c.bad(t + " BAD Malformed PLAIN response")
	}
	return c.finishLogin(t, user, pass)
}

// finishLogin authenticates, dials upstream and, on success, answers with
// the upstream's capabilities and relays the session.
func (c *conn) finishLogin(tag, user, pass string) (bool, error) {
	up, err := c.s.Login(user, pass, "")
	if err != nil {
		f := proxy.Classify(err)
		code := "UNAVAILABLE"
		switch {
		case f.Auth:
			code = "AUTHENTICATIONFAILED"
		case f.Local:
			code = "CONTACTADMIN" // RFC 5530 §3
		}
		return false, c.s.Reply(tag + " NO [" + code + "] " + f.Message)
	}
	reply := tag + " OK Logged in"
	if caps := cleanCapabilities(up.Capabilities); caps != "" {
		reply = tag + " OK [CAPABILITY " + caps + "] Logged in"
	}
	return true, c.s.Splice(up, reply)
}

// cleanCapabilities keeps the capability names that are atoms, so that an
// odd upstream cannot break the response code.
func cleanCapabilities(caps []string) string {
	var out []string
	for _, cp := range caps {
		ok := cp != ""
		for i := 0; i < len(cp) && ok; i++ {
			ok = isAtomChar(cp[i])
		}
		if ok {
			out = append(out, cp)
		}
	}
	return strings.Join(out, " ")
}
