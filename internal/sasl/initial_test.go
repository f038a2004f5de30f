package sasl

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestInitialResponse(t *testing.T) {
	ir, err := InitialResponse("xoauth2", "alice@example.test", "tok", "ignored", 1)
	if err != nil || string(ir) != "user=alice@example.test\x01auth=Bearer tok\x01\x01" {
		t.Errorf("xoauth2: %q %v", ir, err)
	}
	ir, err = InitialResponse("OAuthBearer", "alice@example.test", "tok", "imap.example.test", 993)
	if err != nil || string(ir) != "n,a=alice@example.test,\x01host=imap.example.test\x01port=993\x01auth=Bearer tok\x01\x01" {
		t.Errorf("oauthbearer: %q %v", ir, err)
	}
	b64, err := InitialResponseBase64("XOAUTH2", "alice@example.test", "tok", "", 0)
	// The prefix of every XOAUTH2 response in the Dovecot transcripts.
	if err != nil || !strings.HasPrefix(b64, "dXNlcj1hbGlj") {
		t.Errorf("base64: %q %v", b64, err)
	}
	if dec, _ := base64.StdEncoding.DecodeString(b64); string(dec) != "user=alice@example.test\x01auth=Bearer tok\x01\x01" {
		t.Errorf("base64 decodes to %q", dec)
	}
	if _, err := InitialResponse("PLAIN", "u", "t", "", 0); !errors.Is(err, ErrUnsupportedMechanism) {
		t.Errorf("PLAIN: %v", err)
	}
	if _, err := InitialResponseBase64("xoauth2", "u", secretToken+"\n", "", 0); !errors.Is(err, ErrInvalidToken) ||
		strings.Contains(err.Error(), secretToken) {
		t.Errorf("bad token: %v", err)
	}
}

func TestChoose(t *testing.T) {
	tests := []struct {
		offered []string
		prefer  string
		want    string
	}{
		{[]string{"PLAIN", "XOAUTH2", "OAUTHBEARER"}, "", "XOAUTH2"},
		{[]string{"PLAIN", "XOAUTH2", "OAUTHBEARER"}, "oauthbearer", "OAUTHBEARER"},
		{[]string{"AUTH=OAUTHBEARER", "AUTH=PLAIN"}, "", "OAUTHBEARER"},
		{[]string{"xoauth2"}, "OAUTHBEARER", "XOAUTH2"}, // Microsoft: only XOAUTH2
		{[]string{"oauthbearer"}, "xoauth2", "OAUTHBEARER"},
	}
	for _, tt := range tests {
		got, err := Choose(tt.offered, tt.prefer)
		if err != nil || got != tt.want {
			t.Errorf("Choose(%q, %q) = %q, %v; want %q", tt.offered, tt.prefer, got, err, tt.want)
		}
	}
	_, err := Choose([]string{"PLAIN", "LOGIN"}, "")
	var nm *NoMechanismError
	if !errors.As(err, &nm) || !strings.Contains(err.Error(), "PLAIN LOGIN") {
		t.Errorf("no OAuth mechanism: %v", err)
	}
	if _, err := Choose(nil, ""); !errors.As(err, &nm) {
		t.Errorf("nothing offered: %v", err)
	}
	if _, err := Choose([]string{"XOAUTH2"}, "plain"); !errors.Is(err, ErrUnsupportedMechanism) {
		t.Errorf("unknown preference: %v", err)
	}
}
