package pop3proxy

import (
	"bytes"
	"errors"
	"strings"
)

var errSyntax = errors.New("pop3 syntax error")

// maxKeyword is the longest POP3 keyword (RFC 2449 §3: three or four
// characters).
const maxKeyword = 4

// parseCommand splits a command line into its upper-cased keyword and the
// rest of the line after one space. The rest is kept whole: passwords may
// hold spaces (RFC 1939 leaves PASS's argument to the end of the line).
func parseCommand(line []byte) (keyword, arg string, err error) {
	if bytes.ContainsAny(line, "\x00\r\n") {
		return "", "", errSyntax
	}
	kw, rest, hasArg := bytes.Cut(line, []byte{' '})
	if len(kw) == 0 || len(kw) > maxKeyword {
		return "", "", errSyntax
	}
	for _, c := range kw {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return "", "", errSyntax
		}
	}
	if hasArg && len(rest) == 0 {
		return "", "", errSyntax
	}
	return strings.ToUpper(string(kw)), string(rest), nil
}
