package imapproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

// bytesSource feeds the parser from a byte slice, like a session would.
type bytesSource struct {
	r         *bufio.Reader
	max       int
	continues int
}

func newBytesSource(b []byte, max int) *bytesSource {
	return &bytesSource{r: bufio.NewReader(bytes.NewReader(b)), max: max}
}

var errTooLong = errors.New("too long")

func (s *bytesSource) ReadLine() ([]byte, error) {
	l, err := s.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(l) > s.max+2 {
		return nil, errTooLong
	}
	if err != nil {
		return nil, err
	}
	l = bytes.TrimSuffix(bytes.TrimSuffix(l, []byte("\n")), []byte("\r"))
	return append([]byte(nil), l...), nil
}

func (s *bytesSource) ReadFull(n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := io.ReadFull(s.r, b)
	return b, err
}

func (s *bytesSource) Continue() error { s.continues++; return nil }

func TestReadCommand(t *testing.T) {
	tests := []struct {
		in        string
		tag, name string
		args      []string // atoms as is, strings as "s:VALUE", lists as ( )
		err       string   // syntax error message, if any
		continues int
	}{
		{in: "a1 NOOP\r\n", tag: "a1", name: "NOOP"},
		{in: "a1 login alice secret\r\n", tag: "a1", name: "LOGIN", args: []string{"alice", "secret"}},
		{in: `x LOGIN "al ice" "p\"w\\d"` + "\r\n", tag: "x", name: "LOGIN", args: []string{"s:al ice", `s:p"w\d`}},
		{in: "x LOGIN {5}\r\nalice {2+}\r\npw\r\n", tag: "x", name: "LOGIN", args: []string{"s:alice", "s:pw"}, continues: 1},
		{in: "x LOGIN {0}\r\n {0}\r\n\r\n", tag: "x", name: "LOGIN", args: []string{"s:", "s:"}, continues: 2},
		{in: `t ID ("name" "x" "os" NIL)` + "\r\n", tag: "t", name: "ID", args: []string{"(", "s:name", "s:x", "s:os", "NIL", ")"}},
		{in: "t] NOOP\n", tag: "t]", name: "NOOP"},
		{in: "a AUTHENTICATE PLAIN AGFsaWNlAHB3\r\n", tag: "a", name: "AUTHENTICATE", args: []string{"PLAIN", "AGFsaWNlAHB3"}},
		{in: "\r\n", err: "Invalid tag"},
		{in: "+ NOOP\r\n", err: "Invalid tag"},
		{in: "a+b NOOP\r\n", err: "Invalid tag"},
		{in: "a\r\n", err: "Invalid tag"},
		{in: "a \r\n", err: "Missing command"},
		{in: "a NOOP \r\n", err: "Invalid arguments"},
		{in: "a LOGIN  alice\r\n", err: "Invalid character in arguments"},
		{in: `a LOGIN "alice` + "\r\n", err: "Invalid quoted string"},
		{in: `a LOGIN "a\lice"` + "\r\n", err: "Invalid quoted string"},
		{in: "a LOGIN {5\r\n", err: "Invalid literal"},
		{in: "a LOGIN {5} x\r\n", err: "Invalid literal"},
		{in: "a LOGIN {-1}\r\n", err: "Invalid literal"},
		{in: "a LOGIN {99999999999}\r\n", err: "Invalid literal"},
		{in: "a LOGIN {200}\r\n", err: "Literal too big"},
		{in: "a ID (\r\n", err: "Unbalanced parentheses"},
		{in: "a ID )\r\n", err: "Invalid character in arguments"},
		{in: "a ID ((((((((((x))))))))))\r\n", err: "Lists nested too deep"},
		{in: "a LOGIN {3+}\r\na\x00b\r\n", err: "NUL in literal"},
	}
	for _, tt := range tests {
		src := newBytesSource([]byte(tt.in), 100)
		cmd, err := readCommand(src, 100)
		if tt.err != "" {
			var se *syntaxError
			if !errors.As(err, &se) || se.msg != tt.err {
				t.Errorf("%q: got %v, want syntax error %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if cmd.tag != tt.tag || cmd.name != tt.name || fmt.Sprint(describe(cmd.args)) != fmt.Sprint(tt.args) {
			t.Errorf("%q: got %s %s %q, want %s %s %q", tt.in, cmd.tag, cmd.name, describe(cmd.args), tt.tag, tt.name, tt.args)
		}
		if src.continues != tt.continues {
			t.Errorf("%q: %d continuations, want %d", tt.in, src.continues, tt.continues)
		}
	}
}

func describe(args []token) []string {
	var out []string
	for _, a := range args {
		switch a.kind {
		case tokAtom:
			out = append(out, a.val)
		case tokString:
			out = append(out, "s:"+a.val)
		case tokOpen:
			out = append(out, "(")
		case tokClose:
			out = append(out, ")")
		}
	}
	return out
}

// encode writes cmd back in wire form: strings as literals, so that any
// value survives.
func encode(cmd *command) string {
	var b strings.Builder
	b.WriteString(cmd.tag + " " + cmd.name)
	prevOpen := false
	for _, a := range cmd.args {
		if a.kind != tokClose && !prevOpen {
			b.WriteByte(' ')
		}
		prevOpen = a.kind == tokOpen
		switch a.kind {
		case tokAtom:
			b.WriteString(a.val)
		case tokString:
			fmt.Fprintf(&b, "{%d+}\r\n%s", len(a.val), a.val)
		case tokOpen:
			b.WriteByte('(')
		case tokClose:
			b.WriteByte(')')
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// FuzzIMAPCommand reads commands from arbitrary input: no panic, every
// accepted command has a valid tag and name, and writing it back and
// reading it again gives the same command.
func FuzzIMAPCommand(f *testing.F) {
	for _, s := range []string{
		"a LOGIN alice secret\r\n",
		`a LOGIN "al\"ice" "p\\w"` + "\r\n",
		"a LOGIN {5}\r\nalice {6+}\r\nsecret\r\n",
		`a ID ("name" "x")` + "\r\n",
		"a AUTHENTICATE PLAIN\r\nAGEAYg==\r\n",
		"a STARTTLS\r\nb NOOP\r\n",
		"* OK\r\n",
	} {
		f.Add([]byte(s))
	}
	const limit = 512
	f.Fuzz(func(t *testing.T, in []byte) {
		src := newBytesSource(in, limit)
		for range 16 {
			cmd, err := readCommand(src, limit)
			if err != nil {
				var se *syntaxError
				if errors.As(err, &se) && !se.fatal {
					continue
				}
				return
			}
			if cmd.tag == "" || cmd.name == "" || strings.ContainsAny(cmd.tag, " +\r\n") {
				t.Fatalf("bad command %+v from %q", cmd, in)
			}
			wire := encode(cmd)
			again, err := readCommand(newBytesSource([]byte(wire), len(wire)), len(wire))
			if err != nil {
				t.Fatalf("re-reading %q: %v", wire, err)
			}
			if again.tag != cmd.tag || again.name != cmd.name || !slices.Equal(again.args, cmd.args) {
				t.Fatalf("round trip changed %+v into %+v", cmd, again)
			}
		}
	})
}
