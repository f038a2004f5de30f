package proxy

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"
)

func TestDecodeResponse(t *testing.T) {
	for in, want := range map[string]string{"=": "", "YWJj": "abc", "AGEAYg==": "\x00a\x00b"} {
		got, err := DecodeResponse([]byte(in))
		if err != nil || string(got) != want {
			t.Errorf("DecodeResponse(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "YWJj=", "YW Jj", "!!!!", "YWJ", "YWI=\n"} {
		if _, err := DecodeResponse([]byte(in)); in != "" && !errors.Is(err, ErrBadBase64) {
			t.Errorf("DecodeResponse(%q) = %v, want ErrBadBase64", in, err)
		}
	}
}

func TestParsePlain(t *testing.T) {
	tests := []struct {
		in         string
		user, pass string
		err        error
	}{
		{"\x00alice\x00secret", "alice", "secret", nil},
		{"alice\x00alice\x00p w\x01", "alice", "p w\x01", nil},
		{"bob\x00alice\x00secret", "", "", ErrAuthzid},
		{"", "", "", ErrBadPlain},
		{"\x00alice", "", "", ErrBadPlain},
		{"\x00\x00secret", "", "", ErrBadPlain},
		{"\x00alice\x00", "", "", ErrBadPlain},
		{"\x00alice\x00sec\x00ret", "", "", ErrBadPlain},
		{"\x00alice\x00" + string(bytes.Repeat([]byte("x"), 1000)), "", "", ErrBadPlain},
	}
	for _, tt := range tests {
		user, pass, err := ParsePlain([]byte(tt.in))
		if user != tt.user || pass != tt.pass || !errors.Is(err, tt.err) {
			t.Errorf("ParsePlain(%q) = %q, %q, %v; want %q, %q, %v", tt.in, user, pass, err, tt.user, tt.pass, tt.err)
		}
		if err != nil && bytes.Contains([]byte(err.Error()), []byte("secret")) {
			t.Errorf("error %q holds the password", err)
		}
	}
}

// FuzzPLAIN decodes arbitrary base64 responses: no panic, and an accepted
// response encodes back to one that decodes the same way.
func FuzzPLAIN(f *testing.F) {
	for _, s := range []string{"\x00alice\x00secret", "a\x00a\x00b", "\x00\x00", "="} {
		f.Add([]byte(base64.StdEncoding.EncodeToString([]byte(s))))
	}
	f.Add([]byte("="))
	f.Fuzz(func(t *testing.T, line []byte) {
		resp, err := DecodeResponse(line)
		if err != nil {
			return
		}
		user, pass, err := ParsePlain(resp)
		if err != nil {
			return
		}
		if user == "" || pass == "" || bytes.IndexByte([]byte(user+pass), 0) >= 0 {
			t.Fatalf("%q gave %q %q", resp, user, pass)
		}
		again := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
		r2, err := DecodeResponse([]byte(again))
		if err != nil {
			t.Fatal(err)
		}
		u2, p2, err := ParsePlain(r2)
		if err != nil || u2 != user || p2 != pass {
			t.Fatalf("round trip: %q %q %v", u2, p2, err)
		}
	})
}
