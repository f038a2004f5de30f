package sasl

import (
	"strings"

	gosasl "github.com/emersion/go-sasl"
)

// DefaultXOAUTH2Failure is the error challenge the XOAUTH2 server sends
// unless told otherwise: what Gmail sends.
var DefaultXOAUTH2Failure = []byte(`{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`)

// XOAUTH2Client is an XOAUTH2 client. It implements go-sasl's Client and
// FailureReporter.
//
// The initial response is "user=" USER 0x01 "auth=Bearer " TOKEN 0x01 0x01.
// When the server answers it with an error challenge, Next keeps the
// decoded challenge (see Failure) and answers with an empty response, after
// which the server reports the failure in its protocol.
type XOAUTH2Client struct {
	username, token string
	failure         *Failure
	answered        bool
}

var _ gosasl.Client = (*XOAUTH2Client)(nil)

// NewXOAUTH2Client returns an XOAUTH2 client. It does no I/O; the arguments
// are checked by Start.
func NewXOAUTH2Client(username, token string) *XOAUTH2Client {
	return &XOAUTH2Client{username: username, token: token}
}

// Start returns the mechanism name and the initial response. It fails with
// ErrInvalidUsername or ErrInvalidToken when they cannot be carried.
func (c *XOAUTH2Client) Start() (mech string, ir []byte, err error) {
	c.failure, c.answered = nil, false
	if c.username == "" || hasControl(c.username) {
		return "", nil, ErrInvalidUsername
	}
	if !validToken(c.token) {
		return "", nil, ErrInvalidToken
	}
	return XOAUTH2, []byte("user=" + c.username + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

// Next answers the server's error challenge with an empty response and
// keeps the challenge for Failure. A second challenge is a protocol error.
// The challenge may be raw JSON or base64 (see DecodeFailure); one that
// decodes to nothing is kept as Raw only.
func (c *XOAUTH2Client) Next(challenge []byte) ([]byte, error) {
	if c.answered {
		return nil, gosasl.ErrUnexpectedServerChallenge
	}
	c.answered = true
	c.failure = failureOrRaw(challenge)
	return []byte{}, nil
}

// Failure returns the error challenge of the last exchange, or nil.
func (c *XOAUTH2Client) Failure() *Failure { return c.failure }

// failureOrRaw decodes challenge, or keeps it as Raw when it does not
// decode: the server's final answer still has to be read.
func failureOrRaw(challenge []byte) *Failure {
	f, err := DecodeFailure(challenge)
	if err != nil {
		raw := challenge
		if len(raw) > maxFailureSize {
			raw = raw[:maxFailureSize]
		}
		return &Failure{Raw: append([]byte(nil), raw...)}
	}
	return f
}

// XOAUTH2Options is what an XOAUTH2 client sent.
type XOAUTH2Options struct {
	Username string
	Token    string
}

// XOAUTH2Authenticator checks a client's credentials. A non-nil error fails
// the authentication; the server returns that error unchanged, so it must
// not contain the token.
type XOAUTH2Authenticator func(XOAUTH2Options) error

// XOAUTH2ServerOptions configures NewXOAUTH2Server. The zero value is the
// default.
type XOAUTH2ServerOptions struct {
	// FailureChallenge is the JSON the server sends when the
	// authenticator fails; nil means DefaultXOAUTH2Failure.
	FailureChallenge []byte
}

type xoauth2Server struct {
	auth      XOAUTH2Authenticator
	challenge []byte
	askedIR   bool
	failErr   error
	done      bool
}

// NewXOAUTH2Server returns an XOAUTH2 server; opts may be nil.
//
// Without an initial response it first sends an empty challenge. When auth
// fails it sends the failure challenge, waits for the client's (normally
// empty) answer and then fails with auth's error, whatever the answer was.
// A malformed initial response fails at once with a *ParseError.
func NewXOAUTH2Server(auth XOAUTH2Authenticator, opts *XOAUTH2ServerOptions) gosasl.Server {
	s := &xoauth2Server{auth: auth, challenge: DefaultXOAUTH2Failure}
	if opts != nil && opts.FailureChallenge != nil {
		s.challenge = opts.FailureChallenge
	}
	return s
}

func (s *xoauth2Server) Next(response []byte) (challenge []byte, done bool, err error) {
	switch {
	case s.done:
		return nil, true, gosasl.ErrUnexpectedClientResponse
	case s.failErr != nil:
		s.done = true
		return nil, true, s.failErr
	case response == nil:
		if s.askedIR {
			s.done = true
			return nil, true, gosasl.ErrUnexpectedClientResponse
		}
		s.askedIR = true
		return []byte{}, false, nil
	}
	user, token, err := ParseXOAUTH2(response)
	if err != nil {
		s.done = true
		return nil, true, err
	}
	if err := s.auth(XOAUTH2Options{Username: user, Token: token}); err != nil {
		s.failErr = err
		return append([]byte(nil), s.challenge...), false, nil
	}
	s.done = true
	return nil, true, nil
}

// ParseXOAUTH2 parses an XOAUTH2 initial response as a server receives it
// (after base64 decoding). Keys other than user and auth are ignored, the
// scheme "Bearer" is matched without regard to case.
func ParseXOAUTH2(ir []byte) (user, token string, err error) {
	fail := func(reason string) (string, string, error) {
		return "", "", &ParseError{Mechanism: XOAUTH2, Reason: reason}
	}
	s := string(ir)
	if !strings.HasSuffix(s, "\x01\x01") {
		return fail("missing final separators")
	}
	var haveUser, haveAuth bool
	for _, pair := range strings.Split(s[:len(s)-2], "\x01") {
		key, value, ok := strings.Cut(pair, "=")
		if !ok || !validKey(key) {
			return fail("field is not key=value")
		}
		switch key {
		case "user":
			if haveUser {
				return fail("duplicate user")
			}
			haveUser, user = true, value
		case "auth":
			if haveAuth {
				return fail("duplicate auth")
			}
			haveAuth = true
			if token, err = bearerToken(XOAUTH2, value); err != nil {
				return "", "", err
			}
		}
	}
	if !haveUser || user == "" || hasControl(user) {
		return fail("missing or invalid user")
	}
	if !haveAuth {
		return fail("missing auth")
	}
	return user, token, nil
}

// bearerToken takes the token out of an auth value: "Bearer" SP token.
func bearerToken(mech, value string) (string, error) {
	scheme, token, ok := strings.Cut(value, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", &ParseError{Mechanism: mech, Reason: "auth is not a Bearer token"}
	}
	if !validToken(token) {
		return "", &ParseError{Mechanism: mech, Reason: "invalid token characters"}
	}
	return token, nil
}

// validKey reports whether key is 1*ALPHA (RFC 7628 §3.1).
func validKey(key string) bool {
	if key == "" {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i] | 0x20
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}
