package pop3proxy

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		in, kw, arg string
		ok          bool
	}{
		{"CAPA", "CAPA", "", true},
		{"user alice", "USER", "alice", true},
		{"PASS a b  c", "PASS", "a b  c", true},
		{"AUTH PLAIN AGEAYg==", "AUTH", "PLAIN AGEAYg==", true},
		{"", "", "", false},
		{"QUIT ", "", "", false},
		{"FOOBAR", "", "", false},
		{"US3R x", "", "", false},
		{" USER x", "", "", false},
		{"USER a\rb", "", "", false},
		{"PASS a\x00b", "", "", false},
	}
	for _, tt := range tests {
		kw, arg, err := parseCommand([]byte(tt.in))
		if (err == nil) != tt.ok || kw != tt.kw || arg != tt.arg {
			t.Errorf("%q: got %q %q %v", tt.in, kw, arg, err)
		}
	}
}

// FuzzPOP3Command: no panic; an accepted keyword is 1–4 upper-case
// letters; the argument holds no line break or NUL and rebuilding the line
// gives the input back (up to the keyword's case).
func FuzzPOP3Command(f *testing.F) {
	for _, s := range []string{"USER alice", "PASS a b", "AUTH PLAIN =", "CAPA", "STLS", "QUIT"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		kw, arg, err := parseCommand(line)
		if err != nil {
			return
		}
		if len(kw) < 1 || len(kw) > 4 || strings.ToUpper(kw) != kw || strings.ContainsAny(arg, "\x00\r\n") {
			t.Fatalf("%q gave %q %q", line, kw, arg)
		}
		back := kw
		if arg != "" {
			back += " " + arg
		}
		if len(back) != len(line) || !bytes.EqualFold([]byte(kw), line[:len(kw)]) || back[len(kw):] != string(line[len(kw):]) {
			t.Fatalf("%q rebuilt as %q", line, back)
		}
	})
}
