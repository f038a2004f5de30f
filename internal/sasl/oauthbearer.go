package sasl

import (
	"strconv"
	"strings"

	gosasl "github.com/emersion/go-sasl"
)

// OAuthBearerClient is an OAUTHBEARER client (RFC 7628). It implements
// go-sasl's Client and FailureReporter.
//
// It wraps go-sasl's client for the initial response, but go-sasl's Next
// turns the server's error challenge into an error, which makes protocol
// clients cancel the exchange. RFC 7628 §3.2.3 wants the client to answer
// the error challenge with a single 0x01 byte and then read the server's
// failure; OAuthBearerClient does that and keeps the challenge.
type OAuthBearerClient struct {
	opts     gosasl.OAuthBearerOptions
	inner    gosasl.Client
	failure  *Failure
	answered bool
}

var _ gosasl.Client = (*OAuthBearerClient)(nil)

// NewOAuthBearerClient returns an OAUTHBEARER client. It does no I/O; the
// options are checked by Start. Username is the authorization identity
// (gs2-authzid; empty leaves it out) and is escaped as RFC 5801 requires.
// Host and Port are optional.
func NewOAuthBearerClient(opts *gosasl.OAuthBearerOptions) *OAuthBearerClient {
	o := *opts
	escaped := o
	escaped.Username = escapeSASLName(o.Username)
	return &OAuthBearerClient{opts: o, inner: gosasl.NewOAuthBearerClient(&escaped)}
}

// Start returns the mechanism name and the initial response
// "n,a=USER," 0x01 "host=HOST" 0x01 "port=PORT" 0x01 "auth=Bearer TOKEN" 0x01 0x01.
func (c *OAuthBearerClient) Start() (mech string, ir []byte, err error) {
	c.failure, c.answered = nil, false
	if hasControl(c.opts.Username) {
		return "", nil, ErrInvalidUsername
	}
	if !validToken(c.opts.Token) {
		return "", nil, ErrInvalidToken
	}
	if hasControl(c.opts.Host) {
		return "", nil, ErrInvalidHost
	}
	if c.opts.Port < 0 || c.opts.Port > 65535 {
		return "", nil, ErrInvalidPort
	}
	return c.inner.Start()
}

// Next answers the server's error challenge with 0x01 and keeps the
// challenge for Failure. A second challenge is a protocol error.
func (c *OAuthBearerClient) Next(challenge []byte) ([]byte, error) {
	if c.answered {
		return nil, gosasl.ErrUnexpectedServerChallenge
	}
	c.answered = true
	c.failure = failureOrRaw(challenge)
	return []byte{0x01}, nil
}

// Failure returns the error challenge of the last exchange, or nil.
func (c *OAuthBearerClient) Failure() *Failure { return c.failure }

// escapeSASLName escapes "," and "=" in a gs2 saslname (RFC 5801 §4).
func escapeSASLName(s string) string {
	if !strings.ContainsAny(s, ",=") {
		return s
	}
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// unescapeSASLName undoes escapeSASLName; any other "=" is malformed.
func unescapeSASLName(s string) (string, bool) {
	if !strings.Contains(s, "=") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}

// ParseOAuthBearer parses an OAUTHBEARER initial response as a server
// receives it (after base64 decoding), following the grammar of RFC 7628
// §3.1: a gs2 header without channel binding ("n" or "y"), an optional
// authorization identity, then key=value pairs each ended by 0x01, and a
// final 0x01. Keys other than host, port and auth are ignored; auth is
// required. Username in the result is the unescaped authorization identity.
func ParseOAuthBearer(ir []byte) (gosasl.OAuthBearerOptions, error) {
	var opts gosasl.OAuthBearerOptions
	fail := func(reason string) (gosasl.OAuthBearerOptions, error) {
		return gosasl.OAuthBearerOptions{}, &ParseError{Mechanism: OAuthBearer, Reason: reason}
	}
	s := string(ir)
	flag, rest, ok := strings.Cut(s, ",")
	if !ok || (flag != "n" && flag != "y") {
		return fail("bad gs2 channel binding flag")
	}
	authzid, rest, ok := strings.Cut(rest, ",")
	if !ok {
		return fail("bad gs2 header")
	}
	if authzid != "" {
		name, found := strings.CutPrefix(authzid, "a=")
		if !found {
			return fail("bad gs2 authzid")
		}
		if opts.Username, ok = unescapeSASLName(name); !ok || opts.Username == "" || hasControl(opts.Username) {
			return fail("bad gs2 authzid")
		}
	}
	if len(rest) < 3 || rest[0] != 0x01 || !strings.HasSuffix(rest, "\x01\x01") {
		return fail("missing separators")
	}
	seen := map[string]bool{}
	for _, pair := range strings.Split(rest[1:len(rest)-2], "\x01") {
		key, value, ok := strings.Cut(pair, "=")
		if !ok || !validKey(key) {
			return fail("field is not key=value")
		}
		if seen[key] {
			return fail("duplicate " + key)
		}
		seen[key] = true
		switch key {
		case "host":
			if hasControl(value) {
				return fail("bad host")
			}
			opts.Host = value
		case "port":
			port, err := strconv.ParseUint(value, 10, 16)
			if err != nil || (len(value) > 1 && value[0] == '0') {
				return fail("bad port")
			}
			opts.Port = int(port)
		case "auth":
			token, err := bearerToken(OAuthBearer, value)
			if err != nil {
				return gosasl.OAuthBearerOptions{}, err
			}
			opts.Token = token
		}
	}
	if !seen["auth"] {
		return fail("missing auth")
	}
	return opts, nil
}
