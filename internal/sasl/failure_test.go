package sasl

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// The challenges Dovecot 2.3 sent in the e2e stack, byte for byte.
const (
	dovecotXOAUTH2Challenge     = "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJtYWlsIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwOi8vMTI3LjAuMC4xOjE4MDgwLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0="
	dovecotOAuthBearerChallenge = "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwOi8vMTI3LjAuMC4xOjE4MDgwLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0="
)

func TestDecodeFailure(t *testing.T) {
	const discovery = "http://127.0.0.1:18080/.well-known/openid-configuration"
	tests := []struct {
		name string
		in   string
		want Failure
	}{
		{"dovecot xoauth2 base64", dovecotXOAUTH2Challenge,
			Failure{Status: "401", Schemes: "bearer", Scope: "mail", OpenIDConfiguration: discovery}},
		{"dovecot oauthbearer base64", dovecotOAuthBearerChallenge,
			Failure{Status: "invalid_token", OpenIDConfiguration: discovery}},
		{"google raw json", `{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`,
			Failure{Status: "400", Schemes: "Bearer", Scope: "https://mail.google.com/"}},
		{"base64 without padding", strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(`{"status":"401"}`)), "="),
			Failure{Status: "401"}},
		{"numeric status, array scope, unknown members", ` {"status":401,"scope":["a","b"],"error_description":"x","nested":{"k":1}} `,
			Failure{Status: "401", Scope: "a b"}},
		{"underscore discovery key and upper-case names", `{"STATUS":"invalid_token","openid_configuration":"https://idp/.well-known"}`,
			Failure{Status: "invalid_token", OpenIDConfiguration: "https://idp/.well-known"}},
		{"empty object", `{}`, Failure{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeFailure([]byte(tt.in))
			if err != nil {
				t.Fatalf("DecodeFailure: %v", err)
			}
			if got.Status != tt.want.Status || got.Schemes != tt.want.Schemes || got.Scope != tt.want.Scope ||
				got.OpenIDConfiguration != tt.want.OpenIDConfiguration {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
			if len(got.Raw) == 0 || got.Raw[0] != '{' {
				t.Errorf("Raw = %q, want the JSON", got.Raw)
			}
		})
	}
}

func TestDecodeFailureRejects(t *testing.T) {
	for _, in := range []string{"", "   ", "not base64!", base64.StdEncoding.EncodeToString([]byte("plain text")),
		`["status"]`, `null`, `{"status":`, strings.Repeat("A", maxFailureSize+1)} {
		if f, err := DecodeFailure([]byte(in)); err == nil {
			t.Errorf("DecodeFailure(%.40q) = %+v, want error", in, f)
		}
	}
	if _, err := DecodeFailure([]byte("%%%")); !errors.Is(err, ErrMalformedFailure) {
		t.Errorf("err = %v, want ErrMalformedFailure", err)
	}
}

func TestFailureString(t *testing.T) {
	f, err := DecodeFailure([]byte(dovecotXOAUTH2Challenge))
	if err != nil {
		t.Fatal(err)
	}
	want := `status "401", schemes "bearer", scope "mail", openid-configuration "http://127.0.0.1:18080/.well-known/openid-configuration"`
	if got := f.String(); got != want {
		t.Errorf("String() = %s\nwant        %s", got, want)
	}
	// Terminal escapes from a hostile server are dropped; long values are cut.
	f = &Failure{Status: "4\x1b[2J01", Scope: strings.Repeat("s", 500)}
	got := f.String()
	if strings.ContainsRune(got, 0x1b) || len(got) > 2*maxFieldDisplay {
		t.Errorf("String() = %q, want no escape and a cut scope", got)
	}
	if (*Failure)(nil).String() != "no error details" || (&Failure{}).String() != "no error details" {
		t.Error("empty failure should say so")
	}
}

func FuzzDecodeFailure(f *testing.F) {
	f.Add([]byte(dovecotXOAUTH2Challenge))
	f.Add([]byte(dovecotOAuthBearerChallenge))
	f.Add([]byte(`{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`))
	f.Add([]byte(`{"status":401,"scope":["a",1,{"x":null}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := DecodeFailure(in)
		if err != nil {
			return
		}
		s := got.String()
		for _, r := range s {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("String() holds control character %U: %q", r, s)
			}
		}
		// Decoding the kept JSON again gives the same failure.
		again, err := DecodeFailure(got.Raw)
		if err != nil {
			t.Fatalf("Raw %q does not decode again: %v", got.Raw, err)
		}
		if again.Status != got.Status || again.Scope != got.Scope || again.Schemes != got.Schemes ||
			again.OpenIDConfiguration != got.OpenIDConfiguration || !bytes.Equal(again.Raw, got.Raw) {
			t.Fatalf("second decode differs: %+v vs %+v", again, got)
		}
		// And so does its base64 form.
		b64, err := DecodeFailure([]byte(base64.StdEncoding.EncodeToString(got.Raw)))
		if err != nil || b64.Status != got.Status {
			t.Fatalf("base64 of Raw: %v %+v", err, b64)
		}
	})
}
