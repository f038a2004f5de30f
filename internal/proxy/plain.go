package proxy

import (
	"bytes"
	"encoding/base64"
	"errors"
)

// Errors from decoding SASL responses.
var (
	ErrBadBase64 = errors.New("invalid base64 in sasl response")
	ErrBadPlain  = errors.New("malformed sasl plain response")
	// ErrAuthzid reports a PLAIN response asking to act as another user.
	ErrAuthzid = errors.New("sasl plain authorization identity differs from authentication identity")
)

// maxPlain bounds a decoded PLAIN response: RFC 4616 allows 255 octets for
// each of the three fields.
const maxPlain = 3*255 + 2

// DecodeResponse decodes one base64 SASL client response as sent in an
// initial response or a continuation line. A single "=" stands for an empty
// response (RFC 4959, RFC 4954, RFC 5034).
func DecodeResponse(line []byte) ([]byte, error) {
	if string(line) == "=" {
		return []byte{}, nil
	}
	if bytes.ContainsAny(line, "\r\n") { // the decoder would skip them
		return nil, ErrBadBase64
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(line)))
	n, err := base64.StdEncoding.Strict().Decode(out, line)
	if err != nil {
		return nil, ErrBadBase64
	}
	return out[:n], nil
}

// ParsePlain splits a decoded SASL PLAIN response (RFC 4616:
// authzid NUL authcid NUL passwd) into the login and the password. The
// authorization identity must be empty or equal to the login: the proxy does
// not let one user act as another.
func ParsePlain(resp []byte) (login, password string, err error) {
	if len(resp) > maxPlain {
		return "", "", ErrBadPlain
	}
	authzid, rest, ok := bytes.Cut(resp, []byte{0})
	if !ok {
		return "", "", ErrBadPlain
	}
	authcid, passwd, ok := bytes.Cut(rest, []byte{0})
	if !ok || len(authcid) == 0 || len(passwd) == 0 || bytes.IndexByte(passwd, 0) >= 0 {
		return "", "", ErrBadPlain
	}
	if len(authzid) > 0 && !bytes.Equal(authzid, authcid) {
		return "", "", ErrAuthzid
	}
	return string(authcid), string(passwd), nil
}
