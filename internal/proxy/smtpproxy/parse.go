package smtpproxy

import (
	"bytes"
	"errors"
	"strings"
)

var errSyntax = errors.New("smtp syntax error")

// maxVerb bounds a command verb; the longest in use is STARTTLS.
const maxVerb = 16

// parseCommand splits a command line into its upper-cased verb and the rest
// of the line after one space.
func parseCommand(line []byte) (verb, arg string, err error) {
	if bytes.ContainsAny(line, "\x00\r\n") {
		return "", "", errSyntax
	}
	v, rest, _ := bytes.Cut(line, []byte{' '})
	if len(v) == 0 || len(v) > maxVerb {
		return "", "", errSyntax
	}
	for _, c := range v {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return "", "", errSyntax
		}
	}
	return strings.ToUpper(string(v)), string(rest), nil
}

// validDomain accepts the argument of EHLO or HELO: one word of printable
// ASCII, a domain or an address literal (RFC 5321 §4.1.1.1). It is relayed
// upstream, so nothing else gets through.
func validDomain(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
