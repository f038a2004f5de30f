package pop3

import (
	"encoding/base64"
	"fmt"
	"strings"

	gosasl "github.com/emersion/go-sasl"
)

// AuthOptions tunes Auth. The zero value is the default.
type AuthOptions struct {
	// NoInitialResponse sends "AUTH MECH" alone and the initial response
	// after the server's empty challenge, the two-line form some servers
	// (Microsoft's among them) handle best. Without it the initial
	// response goes on the AUTH line when the line fits in 255 octets
	// (RFC 2449 §4, RFC 5034 §4), and in the two-line form otherwise.
	NoInitialResponse bool
}

// Auth authenticates with SASL (RFC 5034): AUTH MECH [initial-response],
// then challenges and responses in base64 until +OK or -ERR. An empty
// initial response is sent as "=".
//
// A -ERR answer is an *Error; its Challenge holds the last (decoded)
// challenge, which for XOAUTH2 and OAUTHBEARER is the server's JSON error.
// If client.Next fails, Auth cancels the exchange with "*" and returns that
// error. Nothing Auth returns contains the initial response or a response.
func (c *Client) Auth(client gosasl.Client, opts AuthOptions) error {
	if c.err != nil {
		return c.err
	}
	mech, ir, err := client.Start()
	if err != nil {
		return err
	}
	if !validMechanism(mech) {
		return ErrInvalidArgument
	}
	line := "AUTH " + mech
	pendingIR := ir != nil
	if pendingIR && !opts.NoInitialResponse {
		enc := "="
		if len(ir) > 0 {
			enc = base64.StdEncoding.EncodeToString(ir)
		}
		if len(line)+1+len(enc)+2 <= maxCommandLine {
			line += " " + enc
			pendingIR = false
		}
	}
	if err := c.writeLine(line); err != nil {
		return err
	}
	var challenge []byte
	for round := 0; ; round++ {
		s, err := readStatus(c.br)
		if err != nil {
			return c.fail(err)
		}
		switch {
		case s.ok:
			return nil
		case !s.cont:
			e := errorFor("AUTH", s)
			e.Challenge = challenge
			return e
		case round == maxSASLRounds:
			return c.cancel(fmt.Errorf("%w: too many SASL challenges", ErrMalformedResponse))
		}
		var resp []byte
		if pendingIR {
			// The empty challenge of the two-line form (RFC 5034 §4).
			pendingIR = false
			resp = ir
		} else {
			challenge, err = base64.StdEncoding.DecodeString(strings.TrimSpace(s.text))
			if err != nil {
				return c.cancel(fmt.Errorf("%w: challenge is not base64", ErrMalformedResponse))
			}
			if resp, err = client.Next(challenge); err != nil {
				return c.cancel(err)
			}
		}
		if err := c.writeLine(base64.StdEncoding.EncodeToString(resp)); err != nil {
			return err
		}
	}
}

// cancel ends an AUTH exchange with "*" (RFC 5034 §4) and reads the
// server's -ERR, so that the connection stays usable. It returns cause.
func (c *Client) cancel(cause error) error {
	if err := c.writeLine("*"); err != nil {
		return cause
	}
	s, err := readStatus(c.br)
	switch {
	case err != nil:
		c.fail(err)
	case s.ok || s.cont:
		// A server that goes on after "*" is out of step with us.
		c.fail(fmt.Errorf("%w: server did not end the cancelled AUTH", ErrMalformedResponse))
	}
	return fmt.Errorf("pop3: AUTH cancelled: %w", cause)
}

// validMechanism reports whether mech is a SASL mechanism name (RFC 4422
// §3.1: upper-case letters, digits, "-" and "_", at most 20).
func validMechanism(mech string) bool {
	if mech == "" || len(mech) > 20 {
		return false
	}
	for i := 0; i < len(mech); i++ {
		c := mech[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// User sends USER (RFC 1939 §7).
func (c *Client) User(user string) error {
	if err := checkArg(user); err != nil {
		return err
	}
	_, err := c.cmd("USER", "USER "+user)
	return err
}

// Pass sends PASS (RFC 1939 §7). The password never appears in an error.
func (c *Client) Pass(password string) error {
	if err := checkArg(password); err != nil {
		return err
	}
	_, err := c.cmd("PASS", "PASS "+password)
	return err
}
