package imapproxy

import (
	"bytes"
	"strings"
)

// maxDepth bounds parenthesised lists (only ID uses them before login).
const maxDepth = 8

// maxLiteralDigits bounds the digits of a literal's size: more would not
// fit any command line limit anyway.
const maxLiteralDigits = 10

type tokenKind int

const (
	tokAtom   tokenKind = iota // atom, NIL included
	tokString                  // quoted string or literal
	tokOpen                    // (
	tokClose                   // )
)

type token struct {
	kind tokenKind
	val  string
}

// command is one parsed client command.
type command struct {
	tag  string
	name string // upper case
	args []token
}

// source gives the parser lines and literals; the session implements it.
type source interface {
	ReadLine() ([]byte, error)
	ReadFull(n int) ([]byte, error)
	// Continue tells the client to send a synchronizing literal.
	Continue() error
}

// syntaxError is a command the parser refused. When fatal, the client's
// byte stream cannot be followed any more and the connection must close.
type syntaxError struct {
	tag   string // "*" when the tag itself was bad
	code  string // response code, e.g. TOOBIG; may be empty
	msg   string
	fatal bool
}

func (e *syntaxError) Error() string { return "imap syntax error: " + strings.ToLower(e.msg) }

// isAtomChar reports ATOM-CHAR (RFC 9051 §9): any CHAR except
// atom-specials.
func isAtomChar(c byte) bool {
	if c <= 0x20 || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

// isTagChar reports the characters of a tag: ASTRING-CHAR except "+".
func isTagChar(c byte) bool { return (isAtomChar(c) || c == ']') && c != '+' }

// isArgChar reports the characters of an unquoted argument: ASTRING-CHAR
// plus the list wildcards, which LIST patterns use unquoted.
func isArgChar(c byte) bool { return isAtomChar(c) || c == ']' || c == '%' || c == '*' }

// readCommand reads one command, literals included, from src. limit bounds
// the whole command: its lines and its literals.
func readCommand(src source, limit int) (*command, error) {
	line, err := src.ReadLine()
	if err != nil {
		return nil, err
	}
	budget := limit - len(line)

	i := 0
	for i < len(line) && isTagChar(line[i]) {
		i++
	}
	if i == 0 || i == len(line) || line[i] != ' ' {
		return nil, &syntaxError{tag: "*", msg: "Invalid tag"}
	}
	cmd := &command{tag: string(line[:i])}
	bad := func(msg string) error { return &syntaxError{tag: cmd.tag, msg: msg} }
	i++
	j := i
	for j < len(line) && isAtomChar(line[j]) {
		j++
	}
	if j == i {
		return nil, bad("Missing command")
	}
	cmd.name = strings.ToUpper(string(line[i:j]))

	rest := line[j:]
	depth := 0
	needSep := true
	for {
		if len(rest) == 0 {
			if depth != 0 {
				return nil, bad("Unbalanced parentheses")
			}
			return cmd, nil
		}
		if rest[0] == ')' {
			if depth == 0 {
				return nil, bad("Unbalanced parentheses")
			}
			depth--
			cmd.args = append(cmd.args, token{kind: tokClose})
			rest, needSep = rest[1:], true
			continue
		}
		if needSep {
			if rest[0] != ' ' || len(rest) == 1 {
				return nil, bad("Invalid arguments")
			}
			rest = rest[1:]
		}
		needSep = true
		switch c := rest[0]; {
		case c == '(':
			if depth++; depth > maxDepth {
				return nil, bad("Lists nested too deep")
			}
			cmd.args = append(cmd.args, token{kind: tokOpen})
			rest, needSep = rest[1:], false
		case c == '"':
			s, n, ok := parseQuoted(rest)
			if !ok {
				return nil, bad("Invalid quoted string")
			}
			cmd.args = append(cmd.args, token{kind: tokString, val: s})
			rest = rest[n:]
		case c == '{':
			size, sync, ok := parseLiteralMarker(rest)
			if !ok {
				return nil, bad("Invalid literal")
			}
			if size > budget {
				// A synchronizing literal was not sent yet: refuse it and
				// go on. A non-synchronizing one is already on its way and
				// the stream cannot be followed (RFC 7888 §4).
				return nil, &syntaxError{tag: cmd.tag, code: "TOOBIG", msg: "Literal too big", fatal: !sync}
			}
			if sync {
				if err := src.Continue(); err != nil {
					return nil, err
				}
			}
			data, err := src.ReadFull(size)
			if err != nil {
				return nil, err
			}
			if bytes.IndexByte(data, 0) >= 0 {
				// The rest of the command is still to come; give up on
				// the connection rather than guess where it ends.
				return nil, &syntaxError{tag: cmd.tag, msg: "NUL in literal", fatal: true}
			}
			budget -= size
			cmd.args = append(cmd.args, token{kind: tokString, val: string(data)})
			if line, err = src.ReadLine(); err != nil {
				return nil, err
			}
			if budget -= len(line); budget < 0 {
				return nil, &syntaxError{tag: cmd.tag, code: "TOOBIG", msg: "Command too long"}
			}
			rest = line
		default:
			n := 0
			for n < len(rest) && isArgChar(rest[n]) {
				n++
			}
			if n == 0 {
				return nil, bad("Invalid character in arguments")
			}
			cmd.args = append(cmd.args, token{kind: tokAtom, val: string(rest[:n])})
			rest = rest[n:]
		}
	}
}

// parseQuoted parses a quoted string at the start of b (which begins with
// a double quote): only \" and \\ are escapes; CR, LF and NUL are not
// allowed. It returns the value and the number of bytes used.
func parseQuoted(b []byte) (string, int, bool) {
	var sb strings.Builder
	for i := 1; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			return sb.String(), i + 1, true
		case '\\':
			if i+1 == len(b) || (b[i+1] != '"' && b[i+1] != '\\') {
				return "", 0, false
			}
			i++
			sb.WriteByte(b[i])
		case '\r', '\n', 0:
			return "", 0, false
		default:
			sb.WriteByte(c)
		}
	}
	return "", 0, false
}

// parseLiteralMarker parses "{n}" or "{n+}", which must end the line.
func parseLiteralMarker(b []byte) (size int, sync, ok bool) {
	if len(b) < 3 || b[0] != '{' || b[len(b)-1] != '}' {
		return 0, false, false
	}
	digits := b[1 : len(b)-1]
	sync = true
	if n := len(digits); n > 0 && digits[n-1] == '+' {
		digits, sync = digits[:n-1], false
	}
	if len(digits) == 0 || len(digits) > maxLiteralDigits {
		return 0, false, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false, false
		}
		size = size*10 + int(c-'0')
	}
	return size, sync, true
}

// astring returns the value of an atom or string argument.
func (t token) astring() (string, bool) {
	switch t.kind {
	case tokAtom, tokString:
		return t.val, true
	}
	return "", false
}
