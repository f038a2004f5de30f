package sasl

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxFailureSize bounds the error challenge DecodeFailure accepts. The
// challenges seen in the field (Google, Dovecot) are under 250 bytes; the
// bound only stops a hostile server from making us parse megabytes.
const maxFailureSize = 16 << 10

// maxFieldDisplay bounds how much of one server-chosen field String prints.
const maxFieldDisplay = 200

// ErrMalformedFailure is returned by DecodeFailure when the challenge is
// neither a JSON object nor base64 of one.
var ErrMalformedFailure = errors.New("sasl: malformed error challenge")

// Failure is the JSON error object a server sends as its last challenge
// when an XOAUTH2 or OAUTHBEARER authentication fails (RFC 7628 §3.2.2).
//
// Servers differ: Google sends {"status":"400","schemes":"Bearer",
// "scope":"https://mail.google.com/"}, Dovecot sends "401" for XOAUTH2 and
// "invalid_token" for OAUTHBEARER, plus "openid-configuration" when it
// knows the issuer. Fields a server leaves out are empty.
type Failure struct {
	// Status is the error status: an RFC 6750 error code such as
	// "invalid_token", or an HTTP status such as "400" or "401". A JSON
	// number is accepted and kept in its decimal form.
	Status string
	// Schemes lists the HTTP authentication schemes the server accepts.
	Schemes string
	// Scope is the scope the token needs, space-separated.
	Scope string
	// OpenIDConfiguration is the discovery URL of the issuer the server
	// trusts ("openid-configuration").
	OpenIDConfiguration string
	// Raw is the decoded JSON exactly as the server sent it.
	Raw []byte
}

// FailureReporter is implemented by the clients of this package. Failure
// returns the error challenge the server sent during the last
// authentication, or nil if it sent none.
type FailureReporter interface {
	Failure() *Failure
}

// DecodeFailure decodes an error challenge.
//
// Protocol libraries disagree on what they hand over: go-imap and go-smtp
// pass the base64-decoded bytes to sasl.Client.Next, while a raw protocol
// line carries base64. DecodeFailure accepts both: input whose first
// non-space byte is '{' is taken as JSON, anything else is base64-decoded
// (standard alphabet, padding optional) and must then be JSON. Unknown
// members are ignored; string, number and array values are accepted for
// every known member.
func DecodeFailure(challenge []byte) (*Failure, error) {
	if len(challenge) > maxFailureSize {
		return nil, errors.New("sasl: error challenge too long")
	}
	raw := bytes.TrimSpace(challenge)
	if len(raw) == 0 {
		return nil, errors.New("sasl: empty error challenge")
	}
	if raw[0] != '{' {
		dec, err := decodeBase64(raw)
		if err != nil {
			return nil, ErrMalformedFailure
		}
		raw = bytes.TrimSpace(dec)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil || members == nil {
		return nil, ErrMalformedFailure
	}
	f := &Failure{Raw: append([]byte(nil), raw...)}
	for key, val := range members {
		var dst *string
		switch strings.ToLower(key) {
		case "status":
			dst = &f.Status
		case "schemes":
			dst = &f.Schemes
		case "scope":
			dst = &f.Scope
		case "openid-configuration", "openid_configuration":
			dst = &f.OpenIDConfiguration
		default:
			continue
		}
		*dst = jsonText(val)
	}
	return f, nil
}

// decodeBase64 decodes standard base64 with or without padding.
func decodeBase64(b []byte) ([]byte, error) {
	s := string(b)
	if strings.HasSuffix(s, "=") {
		return base64.StdEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// jsonText renders a JSON value as text: strings as themselves, numbers in
// their decimal form, arrays as their elements joined by spaces. Objects,
// booleans and null give "".
func jsonText(val json.RawMessage) string {
	var s string
	if json.Unmarshal(val, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(val, &n) == nil {
		return n.String()
	}
	var list []json.RawMessage
	if json.Unmarshal(val, &list) == nil {
		parts := make([]string, 0, len(list))
		for _, v := range list {
			if t := jsonText(v); t != "" {
				parts = append(parts, t)
			}
		}
		return strings.Join(parts, " ")
	}
	return ""
}

// String describes the failure for a human, for example
// `status "401", schemes "bearer", scope "mail"`. Server-chosen text is
// quoted, cut short and stripped of control characters, so that it cannot
// play tricks on a terminal.
func (f *Failure) String() string {
	if f == nil {
		return "no error details"
	}
	var parts []string
	add := func(name, val string) {
		if val != "" {
			parts = append(parts, name+" "+strconv.Quote(displayText(val)))
		}
	}
	add("status", f.Status)
	add("schemes", f.Schemes)
	add("scope", f.Scope)
	add("openid-configuration", f.OpenIDConfiguration)
	if len(parts) == 0 {
		return "no error details"
	}
	return strings.Join(parts, ", ")
}

// displayText drops control and invalid characters and cuts s to
// maxFieldDisplay runes.
func displayText(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			continue
		}
		if n == maxFieldDisplay {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
