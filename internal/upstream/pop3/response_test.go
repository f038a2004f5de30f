package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		line       string
		ok, cont   bool
		code, text string
	}{
		{"+OK", true, false, "", ""},
		{"+OK Dovecot ready.", true, false, "", "Dovecot ready."},
		{"+Ok lower case", true, false, "", "lower case"},
		{"-ERR", false, false, "", ""},
		{"-ERR [AUTH] Authentication failed.", false, false, "AUTH", "Authentication failed."},
		{"-ERR [SYS/TEMP] Temporary authentication failure.", false, false, "SYS/TEMP", "Temporary authentication failure."},
		{"-ERR [IN-USE] Do you have another POP session running?", false, false, "IN-USE", "Do you have another POP session running?"},
		{"-ERR [not a code] text", false, false, "", "[not a code] text"},
		{"-ERR [SYS//TEMP] text", false, false, "", "[SYS//TEMP] text"},
		{"-ERR [unclosed text", false, false, "", "[unclosed text"},
		{"-ERR bad\x1b[2Jtext", false, false, "", "bad[2Jtext"},
		{"+ ", false, true, "", ""},
		{"+", false, true, "", ""},
		{"+ eyJzdGF0dXMiOiI0MDEifQ==", false, true, "", "eyJzdGF0dXMiOiI0MDEifQ=="},
	}
	for _, tt := range tests {
		s, err := parseStatus(tt.line)
		if err != nil {
			t.Errorf("parseStatus(%q): %v", tt.line, err)
			continue
		}
		if s.ok != tt.ok || s.cont != tt.cont || s.code != tt.code || s.text != tt.text {
			t.Errorf("parseStatus(%q) = %+v", tt.line, s)
		}
	}
	for _, line := range []string{"", "OK", "+OKAY", "-ERROR", "* OK", "250 ok", "+x"} {
		if _, err := parseStatus(line); !errors.Is(err, ErrMalformedResponse) {
			t.Errorf("parseStatus(%q) err = %v, want ErrMalformedResponse", line, err)
		}
	}
}

// stuff dot-stuffs body and appends the terminator, as a server does.
func stuff(body []byte) []byte {
	var out bytes.Buffer
	atLineStart := true
	for _, b := range body {
		if atLineStart && b == '.' {
			out.WriteByte('.')
		}
		out.WriteByte(b)
		atLineStart = b == '\n'
	}
	out.WriteString(".\r\n")
	return out.Bytes()
}

func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("+OK 120 octets\r\nSubject: x\r\n\r\n..dot\r\n.\r\n"))
	f.Add([]byte("-ERR [SYS/TEMP] Temporary authentication failure.\r\n"))
	f.Add([]byte("+ eyJzdGF0dXMiOiI0MDEifQ==\r\n"))
	f.Add([]byte("+OK\r\nSASL XOAUTH2\r\n.\r\n"))
	f.Add([]byte("+OK\n.\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 16)
		s, err := readStatus(br)
		if err != nil {
			return
		}
		if s.code != "" && !strings.Contains(s.line, "["+s.code+"]") {
			t.Fatalf("code %q not in line %q", s.code, s.line)
		}
		// Texts for humans are clean; a continuation's text is base64 and
		// is checked by the decoder.
		if strings.IndexFunc(s.line, isControl) >= 0 || (!s.cont && strings.IndexFunc(s.text, isControl) >= 0) {
			t.Fatalf("control characters kept: %q", s.line)
		}
		if !s.ok {
			return
		}
		rest := data[len(data)-br.Buffered():]
		if len(rest) == 0 {
			return
		}
		body, err := readBody(bufio.NewReaderSize(bytes.NewReader(rest), 16), maxMessageSize)
		if err != nil {
			return
		}
		if len(body) > 0 && body[len(body)-1] != '\n' {
			t.Fatalf("body does not end at a line end: %q", body)
		}
		// Stuffing the body again and reading it back gives the same bytes.
		again, err := readBody(bufio.NewReader(bytes.NewReader(stuff(body))), maxMessageSize)
		if err != nil || !bytes.Equal(again, body) {
			t.Fatalf("round trip: %q -> %q, %v", body, again, err)
		}
		// As a list, every line is returned without its terminator.
		if lines, err := readList(bufio.NewReader(bytes.NewReader(stuff(body)))); err == nil {
			for _, l := range lines {
				if strings.ContainsAny(l, "\n") {
					t.Fatalf("list line holds a newline: %q", l)
				}
			}
		}
	})
}
