package smtpproxy

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		in, verb, arg string
		ok            bool
	}{
		{"EHLO client.test", "EHLO", "client.test", true},
		{"auth plain AGEAYg==", "AUTH", "plain AGEAYg==", true},
		{"QUIT", "QUIT", "", true},
		{"MAIL FROM:<a@b>", "MAIL", "FROM:<a@b>", true},
		{"", "", "", false},
		{"\x16\x03\x01", "", "", false},
		{"EHLO a\rb", "", "", false},
	}
	for _, tt := range tests {
		verb, arg, err := parseCommand([]byte(tt.in))
		if (err == nil) != tt.ok || verb != tt.verb || arg != tt.arg {
			t.Errorf("%q: got %q %q %v", tt.in, verb, arg, err)
		}
	}
	for in, ok := range map[string]bool{"client.test": true, "[127.0.0.1]": true, "": false, "a b": false, "a\x01": false, "é": false} {
		if validDomain(in) != ok {
			t.Errorf("validDomain(%q) = %v", in, !ok)
		}
	}
}

// FuzzSMTPCommand: no panic; an accepted verb is upper-case letters, the
// argument holds no line break or NUL and the line can be rebuilt from
// them.
func FuzzSMTPCommand(f *testing.F) {
	for _, s := range []string{"EHLO x", "AUTH LOGIN dXNlcg==", "AUTH PLAIN", "STARTTLS", "MAIL FROM:<>"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		verb, arg, err := parseCommand(line)
		if err != nil {
			return
		}
		if verb == "" || strings.ToUpper(verb) != verb || strings.ContainsAny(arg, "\x00\r\n") {
			t.Fatalf("%q gave %q %q", line, verb, arg)
		}
		if !bytes.EqualFold([]byte(verb), line[:len(verb)]) || !strings.HasSuffix(string(line), arg) {
			t.Fatalf("%q split as %q %q", line, verb, arg)
		}
		if validDomain(arg) && strings.ContainsAny(arg, " \t\x00\r\n") {
			t.Fatalf("validDomain accepted %q", arg)
		}
	})
}
