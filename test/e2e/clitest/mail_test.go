package clitest

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/test/e2e"
)

// checkMail proves that Dovecot accepts tok for user over IMAP (XOAUTH2 and OAUTHBEARER),
// POP3 and submission (XOAUTH2), each after STARTTLS.
func checkMail(t *testing.T, ctx context.Context, s *e2e.Stack, user, tok string) {
	t.Helper()
	tc := s.TLSConfig()
	logins := []struct {
		what string
		err  error
	}{
		{"IMAP XOAUTH2", e2e.IMAPLogin(ctx, e2e.Loopback(s.IMAPPort), e2e.StartTLS, tc, user, tok, e2e.XOAUTH2)},
		{"IMAP OAUTHBEARER", e2e.IMAPLogin(ctx, e2e.Loopback(s.IMAPPort), e2e.StartTLS, tc, user, tok, e2e.OAUTHBEARER)},
		{"POP3 XOAUTH2", e2e.POP3Login(ctx, e2e.Loopback(s.POP3Port), e2e.StartTLS, tc, user, tok, e2e.XOAUTH2)},
		{"submission XOAUTH2", e2e.SubmissionSend(ctx, e2e.Loopback(s.SubmissionPort), e2e.StartTLS, tc, user, tok, e2e.XOAUTH2, "", nil)},
	}
	for _, l := range logins {
		if l.err != nil {
			t.Errorf("%s as %s with the token from mailkey: %v", l.what, user, l.err)
		}
	}
}

// imapOK logs in over IMAP with XOAUTH2.
func imapOK(t *testing.T, ctx context.Context, s *e2e.Stack, tok string) {
	t.Helper()
	if err := e2e.IMAPLogin(ctx, e2e.Loopback(s.IMAPPort), e2e.Plain, nil, e2e.Alice, tok, e2e.XOAUTH2); err != nil {
		t.Fatalf("IMAP XOAUTH2 with the token from mailkey: %v", err)
	}
}

// imapRefused asserts that Dovecot refuses tok for good (not a temporary failure).
func imapRefused(t *testing.T, ctx context.Context, s *e2e.Stack, tok string) {
	t.Helper()
	err := e2e.IMAPLogin(ctx, e2e.Loopback(s.IMAPPort), e2e.Plain, nil, e2e.Alice, tok, e2e.XOAUTH2)
	var ae *e2e.AuthError
	if !errors.As(err, &ae) || ae.Temporary {
		t.Fatalf("IMAP login with a revoked token: got %v, want a refusal", err)
	}
}

// checkSASL proves that mailkey token --sasl prints the right initial responses for tok.
func checkSASL(t *testing.T, ctx context.Context, m *mk, name, user, tok string) {
	t.Helper()
	decode := func(mech string) string {
		t.Helper()
		ir := m.Token(ctx, name, "--sasl", mech)
		raw, err := base64.StdEncoding.DecodeString(ir)
		if err != nil {
			t.Fatalf("mailkey token --sasl %s: output is not base64: %v", mech, err)
		}
		m.Leaks.Secret("SASL initial response", ir)
		return string(raw)
	}
	if got, want := decode("xoauth2"), "user="+user+"\x01auth=Bearer "+tok+"\x01\x01"; got != want {
		t.Errorf("mailkey token --sasl xoauth2 decodes to %d bytes, not the XOAUTH2 response for %s and the token (%d bytes)",
			len(got), user, len(want))
	}
	got := decode("oauthbearer")
	if !strings.HasPrefix(got, "n,a="+user+",") || !strings.Contains(got, "\x01auth=Bearer "+tok+"\x01") || !strings.HasSuffix(got, "\x01\x01") {
		t.Errorf("mailkey token --sasl oauthbearer is not an RFC 7628 response for %s and the token", user)
	}
}
