package sasl

import (
	"errors"
	"strings"
)

// Mechanism names, as servers advertise them.
const (
	XOAUTH2     = "XOAUTH2"
	OAuthBearer = "OAUTHBEARER"
)

var (
	// ErrUnsupportedMechanism is returned for a mechanism name this package
	// does not implement.
	ErrUnsupportedMechanism = errors.New("sasl: unsupported mechanism")
	// ErrInvalidUsername is returned when a username is empty where one is
	// required, or holds control characters a SASL message cannot carry.
	ErrInvalidUsername = errors.New("sasl: invalid username")
	// ErrInvalidToken is returned when an access token is empty or holds
	// characters other than visible ASCII (RFC 6750 §2.1 b64token is a
	// subset). The token itself is never part of the error.
	ErrInvalidToken = errors.New("sasl: invalid access token")
	// ErrInvalidHost is returned when an OAUTHBEARER host holds control
	// characters.
	ErrInvalidHost = errors.New("sasl: invalid host")
	// ErrInvalidPort is returned when an OAUTHBEARER port is outside
	// 0–65535 (0 leaves it out).
	ErrInvalidPort = errors.New("sasl: invalid port")
)

// ParseError reports a malformed client response. Reason never quotes the
// token, and quotes nothing else of the input either.
type ParseError struct {
	Mechanism string // XOAUTH2 or OAUTHBEARER
	Reason    string
}

func (e *ParseError) Error() string {
	return "sasl: malformed " + e.Mechanism + " response: " + e.Reason
}

// NoMechanismError is returned by Choose when a server offers neither
// XOAUTH2 nor OAUTHBEARER.
type NoMechanismError struct {
	// Offered is what the server advertised, as given to Choose.
	Offered []string
}

func (e *NoMechanismError) Error() string {
	if len(e.Offered) == 0 {
		return "sasl: server offers no SASL mechanism"
	}
	offered := make([]string, len(e.Offered))
	for i, m := range e.Offered {
		offered[i] = displayText(m)
	}
	return "sasl: server offers neither XOAUTH2 nor OAUTHBEARER (offered: " + strings.Join(offered, " ") + ")"
}

// validToken reports whether token is non-empty visible ASCII: anything
// else cannot be a bearer token and could break the framing.
func validToken(token string) bool {
	if token == "" {
		return false
	}
	for i := 0; i < len(token); i++ {
		if token[i] < 0x21 || token[i] > 0x7e {
			return false
		}
	}
	return true
}

// hasControl reports whether s holds an ASCII control character.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}
