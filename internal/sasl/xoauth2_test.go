package sasl

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	gosasl "github.com/emersion/go-sasl"
)

// A token-shaped value that must never show up in errors or messages.
const secretToken = "ya29.SECRET-token_value~9/+="

func TestXOAUTH2ClientStart(t *testing.T) {
	c := NewXOAUTH2Client("alice@example.test", secretToken)
	mech, ir, err := c.Start()
	if err != nil {
		t.Fatal(err)
	}
	want := "user=alice@example.test\x01auth=Bearer " + secretToken + "\x01\x01"
	if mech != "XOAUTH2" || string(ir) != want {
		t.Errorf("Start() = %q, %q; want XOAUTH2, %q", mech, ir, want)
	}
	if c.Failure() != nil {
		t.Error("Failure() before any challenge should be nil")
	}
}

func TestXOAUTH2ClientRejects(t *testing.T) {
	tests := []struct {
		user, token string
		want        error
	}{
		{"", secretToken, ErrInvalidUsername},
		{"a\x01b", secretToken, ErrInvalidUsername},
		{"alice", "", ErrInvalidToken},
		{"alice", secretToken + "\x01", ErrInvalidToken},
		{"alice", secretToken + " x", ErrInvalidToken},
		{"alice", secretToken + "\r\n", ErrInvalidToken},
	}
	for _, tt := range tests {
		_, _, err := NewXOAUTH2Client(tt.user, tt.token).Start()
		if !errors.Is(err, tt.want) {
			t.Errorf("Start(%q, token) = %v, want %v", tt.user, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), secretToken) {
			t.Errorf("error leaks the token: %v", err)
		}
	}
}

func TestXOAUTH2ClientFailureChallenge(t *testing.T) {
	c := NewXOAUTH2Client("alice@example.test", secretToken)
	if _, _, err := c.Start(); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Next([]byte(`{"status":"401","schemes":"bearer","scope":"mail"}`))
	if err != nil {
		t.Fatal(err)
	}
	if resp == nil || len(resp) != 0 {
		t.Errorf("response = %q, want empty and non-nil", resp)
	}
	if f := c.Failure(); f == nil || f.Status != "401" || f.Scope != "mail" {
		t.Errorf("Failure() = %+v", f)
	}
	if _, err := c.Next([]byte("{}")); !errors.Is(err, gosasl.ErrUnexpectedServerChallenge) {
		t.Errorf("second challenge: err = %v", err)
	}
	// A challenge that is not JSON is still answered and kept raw.
	c.Start()
	if c.Failure() != nil {
		t.Error("Start should forget the last failure")
	}
	if _, err := c.Next([]byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if f := c.Failure(); f == nil || string(f.Raw) != "garbage" || f.Status != "" {
		t.Errorf("Failure() = %+v", f)
	}
}

// The client against the server, both ways.
func TestXOAUTH2ClientServer(t *testing.T) {
	auth := func(o XOAUTH2Options) error {
		if o.Username == "alice@example.test" && o.Token == secretToken {
			return nil
		}
		return errors.New("bad credentials")
	}
	t.Run("success with IR", func(t *testing.T) {
		_, ir, _ := NewXOAUTH2Client("alice@example.test", secretToken).Start()
		s := NewXOAUTH2Server(auth, nil)
		ch, done, err := s.Next(ir)
		if err != nil || !done || ch != nil {
			t.Fatalf("Next(ir) = %q, %v, %v", ch, done, err)
		}
		if _, _, err := s.Next([]byte{}); !errors.Is(err, gosasl.ErrUnexpectedClientResponse) {
			t.Errorf("after done: %v", err)
		}
	})
	t.Run("success without IR", func(t *testing.T) {
		s := NewXOAUTH2Server(auth, nil)
		ch, done, err := s.Next(nil)
		if err != nil || done || ch == nil || len(ch) != 0 {
			t.Fatalf("Next(nil) = %q, %v, %v; want empty challenge", ch, done, err)
		}
		_, ir, _ := NewXOAUTH2Client("alice@example.test", secretToken).Start()
		if _, done, err := s.Next(ir); err != nil || !done {
			t.Fatalf("Next(ir) = %v, %v", done, err)
		}
	})
	t.Run("failure", func(t *testing.T) {
		c := NewXOAUTH2Client("bob@example.test", secretToken)
		_, ir, _ := c.Start()
		custom := []byte(`{"status":"401","schemes":"bearer","scope":"mail"}`)
		s := NewXOAUTH2Server(auth, &XOAUTH2ServerOptions{FailureChallenge: custom})
		ch, done, err := s.Next(ir)
		if err != nil || done || !bytes.Equal(ch, custom) {
			t.Fatalf("Next(ir) = %q, %v, %v; want the failure challenge", ch, done, err)
		}
		resp, err := c.Next(ch)
		if err != nil {
			t.Fatal(err)
		}
		_, done, err = s.Next(resp)
		if !done || err == nil || err.Error() != "bad credentials" {
			t.Fatalf("final Next = %v, %v", done, err)
		}
		if c.Failure().Status != "401" {
			t.Errorf("client kept %+v", c.Failure())
		}
	})
	t.Run("default challenge", func(t *testing.T) {
		_, ir, _ := NewXOAUTH2Client("bob@example.test", secretToken).Start()
		ch, _, _ := NewXOAUTH2Server(auth, nil).Next(ir)
		f, err := DecodeFailure(ch)
		if err != nil || f.Status != "400" || f.Scope != "https://mail.google.com/" {
			t.Errorf("default challenge %q: %+v %v", ch, f, err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		_, done, err := NewXOAUTH2Server(auth, nil).Next([]byte("user=x\x01auth=Basic " + secretToken + "\x01\x01"))
		var pe *ParseError
		if !done || !errors.As(err, &pe) {
			t.Fatalf("got %v, %v; want *ParseError", done, err)
		}
		if strings.Contains(err.Error(), secretToken) {
			t.Errorf("error leaks the token: %v", err)
		}
	})
}

func TestParseXOAUTH2(t *testing.T) {
	user, token, err := ParseXOAUTH2([]byte("user=a=b@example.test\x01auth=bearer " + secretToken + "\x01\x01"))
	if err != nil || user != "a=b@example.test" || token != secretToken {
		t.Errorf("got %q, %q, %v", user, token, err)
	}
	// Unknown keys are ignored, order does not matter.
	if user, _, err := ParseXOAUTH2([]byte("auth=Bearer t\x01host=x\x01user=u\x01\x01")); err != nil || user != "u" {
		t.Errorf("reordered: %q, %v", user, err)
	}
	bad := []string{
		"",
		"\x01\x01",
		"user=u\x01auth=Bearer " + secretToken + "\x01",    // one final separator
		"user=u\x01auth=Bearer " + secretToken,             // none
		"auth=Bearer " + secretToken + "\x01\x01",          // no user
		"user=\x01auth=Bearer " + secretToken + "\x01\x01", // empty user
		"user=u\x01\x01", // no auth
		"user=u\x01auth=Basic " + secretToken + "\x01\x01",    // wrong scheme
		"user=u\x01auth=Bearer\x01\x01",                       // no token
		"user=u\x01auth=Bearer " + secretToken + " x\x01\x01", // space in token
		"user=u\x01user=v\x01auth=Bearer " + secretToken + "\x01\x01",
		"user=u\x01auth=Bearer a\x01auth=Bearer " + secretToken + "\x01\x01",
		"user=u\x01noequals\x01auth=Bearer " + secretToken + "\x01\x01",
		"user=u\x01\x01auth=Bearer " + secretToken + "\x01\x01", // empty field
		"user=u\x01auth=Bearer " + secretToken + "\x01\x01\x01",
	}
	for _, in := range bad {
		_, _, err := ParseXOAUTH2([]byte(in))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("ParseXOAUTH2(%q) err = %v, want *ParseError", in, err)
			continue
		}
		if strings.Contains(err.Error(), secretToken) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error leaks the token: %v", err)
		}
	}
}

// fuzzMarker is planted in fuzz inputs: no fixed error text contains it,
// so an error that holds it has quoted the input.
const fuzzMarker = "Mk7Qz9xV"

// plantMarker returns a copy of raw with fuzzMarker inserted at a position
// the fuzzer chooses.
func plantMarker(raw []byte, at uint16) []byte {
	i := int(at) % (len(raw) + 1)
	return append(append(append([]byte{}, raw[:i]...), fuzzMarker...), raw[i:]...)
}

func FuzzParseXOAUTH2(f *testing.F) {
	f.Add("alice@example.test", secretToken, []byte("user=u\x01auth=Bearer t\x01\x01"), uint16(6))
	f.Add("a=b,c", "x", []byte("auth=bearer t\x01user=u\x01\x01"), uint16(12))
	f.Fuzz(func(t *testing.T, user, token string, raw []byte, at uint16) {
		// Arbitrary input: no panic, no input (token or otherwise) in errors.
		if _, _, err := ParseXOAUTH2(plantMarker(raw, at)); err != nil && strings.Contains(err.Error(), fuzzMarker) {
			t.Fatalf("error quotes the input: %v", err)
		}
		if u, tok, err := ParseXOAUTH2(raw); err != nil {
			if tok != "" || u != "" {
				t.Fatal("values returned with an error")
			}
		} else if !validToken(tok) || u == "" || hasControl(u) {
			t.Fatalf("accepted invalid values %q %q", u, tok)
		}
		// Round trip for what the client accepts.
		ir, err := InitialResponse("xoauth2", user, token, "", 0)
		if err != nil {
			return
		}
		gotUser, gotToken, err := ParseXOAUTH2(ir)
		if err != nil || gotUser != user || gotToken != token {
			t.Fatalf("round trip of %q/%q: %q %q %v", user, token, gotUser, gotToken, err)
		}
	})
}
