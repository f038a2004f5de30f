package clitest

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// preset is one provider preset pointed at the stack's personality of that provider.
type preset struct {
	name string
	add  func(s *e2e.Stack) []string // mailkey add flags after ACCOUNT
}

var (
	googlePreset    = preset{"google", func(s *e2e.Stack) []string { return s.PresetFlags("google") }}
	microsoftPreset = preset{"microsoft", func(s *e2e.Stack) []string { return s.PresetFlags("microsoft") }}
	outlookPreset   = preset{"outlook", func(s *e2e.Stack) []string { return s.PresetFlags("outlook") }}
	// yahooPreset names nobody in its grants: login proves the address with a mail login.
	yahooPreset = preset{"yahoo", func(s *e2e.Stack) []string {
		return []string{"--provider", "yahoo", "--client-id", e2e.ClientConfidential, "--client-secret", e2e.ClientConfidentialSecret,
			"--auth-url", s.Issuer + "/auth", "--token-url", s.Issuer + "/token",
			"--imap", s.IMAPS, "--pop3", s.POP3S, "--smtp", s.Submissions, "--ca-file", s.CAFile}
	}}
)

// browserLogin runs mailkey login ACCOUNT and signs in at the provider as user; it returns
// the authorization URL mailkey printed and how mailkey ended.
func browserLogin(t *testing.T, ctx context.Context, s *e2e.Stack, m *mk, acct, user, password string) (*url.URL, mailkeytest.Result) {
	t.Helper()
	p := m.start(ctx, "login", acct)
	authURL := p.authorizeURL(ctx, s)
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	redirect, err := s.Deliver(ctx, authURL, user, password)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	m.Leaks.Secret("authorization code", redirect.Query().Get("code"))
	return u, p.wait()
}

// TestPresetIdentity proves that login with the google, microsoft and outlook presets (their
// endpoints and servers on the stack) asks for the OpenID scopes with a nonce and verifies the
// ID token; that signing in as bob for alice's account is refused with both addresses named
// and stores nothing; that a preset whose provider names nobody (yahoo) proves the address with
// a mail login; and that the tokens then work for token and test.
func TestPresetIdentity(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("", 1)
	const acct = "work"

	for _, p := range []preset{googlePreset, microsoftPreset, outlookPreset, yahooPreset} {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			m := newMailkey(t, leaks, "")
			m.Must(ctx, "", append([]string{"add", acct, "--email", e2e.Alice}, p.add(s)...)...)
			u, r := browserLogin(t, ctx, s, m, acct, e2e.Alice, e2e.AlicePassword)
			if r.Code != 0 {
				t.Fatalf("mailkey login: %s", r)
			}
			q := u.Query()
			scopes := strings.Fields(q.Get("scope"))
			switch p.name {
			case "yahoo":
				if q.Has("nonce") || strings.Contains(q.Get("scope"), "openid") {
					t.Errorf("yahoo asked for an ID token: %s", u)
				}
			default:
				if !containsAll(scopes, "openid", "email") || len(q.Get("nonce")) < 32 {
					t.Errorf("authorization URL lacks openid, email or a nonce: %s", u)
				}
			}
			if p.name == "google" && (q.Get("access_type") != "offline" || q.Get("prompt") != "consent") {
				t.Errorf("google: authorization URL lacks access_type=offline or prompt=consent: %s", u)
			}
			if st := m.status(ctx, acct); st.State != "valid" || !st.HasRefresh || st.Identity != e2e.Alice {
				t.Errorf("status after login: %+v", st)
			}
			tok := m.Token(ctx, acct)
			checkMail(t, ctx, s, e2e.Alice, tok)
			if r := m.Run(ctx, "", "test", acct, "--imap"); r.Code != 0 {
				t.Errorf("mailkey test: %s", r)
			}
		})
		t.Run(p.name+" as bob", func(t *testing.T) {
			t.Parallel()
			m := newMailkey(t, leaks, "")
			m.Must(ctx, "", append([]string{"add", acct, "--email", e2e.Alice}, p.add(s)...)...)
			_, r := browserLogin(t, ctx, s, m, acct, e2e.Bob, e2e.BobPassword)
			want := []string{e2e.Alice, "mailkey: hint: "}
			if p.name != "yahoo" {
				want = append(want, "signed in as "+e2e.Bob) // the ID token names bob
			}
			if r.Code == 0 || !containsAll([]string{r.Stderr}, want...) {
				t.Fatalf("login as bob for alice's account: %s", r)
			}
			if st := m.status(ctx, acct); st.State != "none" || st.HasRefresh {
				t.Errorf("a refused login stored something: %+v", st)
			}
		})
	}
	// Outlook.com takes personal accounts only: a work account's ID token (the directory's tid)
	// is refused, with the preset to use instead.
	t.Run("outlook with a work account", func(t *testing.T) {
		t.Parallel()
		m := newMailkey(t, leaks, "")
		m.Must(ctx, "", append([]string{"add", acct, "--email", e2e.Alice, "--provider", "outlook", "--client-id", e2e.ClientMicrosoft},
			s.MicrosoftFlags("organizations")...)...)
		_, r := browserLogin(t, ctx, s, m, acct, e2e.Alice, e2e.AlicePassword)
		if r.Code == 0 || !strings.Contains(r.Stderr, e2e.MicrosoftTenant) || !strings.Contains(r.Stderr, "mailkey: hint: for a work or school account: mailkey add "+acct+" --provider microsoft") {
			t.Fatalf("outlook login with a work account: %s", r)
		}
		if st := m.status(ctx, acct); st.State != "none" {
			t.Errorf("a refused login stored something: %+v", st)
		}
	})

	// The device flow sends no nonce (RFC 8628 has none): the ID token is verified without.
	t.Run("microsoft --device", func(t *testing.T) {
		t.Parallel()
		m := newMailkey(t, leaks, "")
		m.Must(ctx, "", append([]string{"add", acct, "--email", e2e.Alice}, s.PresetFlags("microsoft")...)...)
		p := m.start(ctx, "login", acct, "--device", "--no-qr")
		line, _ := p.waitLine(ctx, "the user code", reDeviceCode.MatchString)
		code := reDeviceCode.FindStringSubmatch(line)[1]
		verify := s.MicrosoftAuthority("common") + "/oauth2/deviceauth?user_code=" + url.QueryEscape(code)
		if err := s.ApproveDevice(ctx, verify, e2e.Alice, e2e.AlicePassword); err != nil {
			t.Fatalf("approve: %v", err)
		}
		if r := p.wait(); r.Code != 0 {
			t.Fatalf("mailkey login --device: %s", r)
		}
		if st := m.status(ctx, acct); st.State != "valid" || st.Identity != e2e.Alice {
			t.Errorf("status after login: %+v", st)
		}
		checkMail(t, ctx, s, e2e.Alice, m.Token(ctx, acct))
	})
}

// containsAll reports whether every want is in one of have (a substring of it).
func containsAll(have []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			if strings.Contains(h, w) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// TestMicrosoftSingleTenantAtCommon proves that the stack answers a single-tenant app signing
// in through common with AADSTS50194, that login names the cause and the fix (the app's
// tenant), and that with that tenant the same app logs in.
func TestMicrosoftSingleTenantAtCommon(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	const acct = "work"
	m := newMailkey(t, leaks, "")
	m.Must(ctx, "", append([]string{"add", acct, "--provider", "microsoft", "--email", e2e.Alice, "--client-id", e2e.ClientMicrosoftSingle}, s.MicrosoftFlags("common")...)...)
	p := m.start(ctx, "login", acct)
	if _, err := s.Deliver(ctx, p.authorizeURL(ctx, s), e2e.Alice, e2e.AlicePassword); err != nil {
		t.Fatalf("browser: %v", err)
	}
	r := p.wait()
	if r.Code == 0 || !strings.Contains(r.Stderr, "AADSTS50194") || !strings.Contains(r.Stderr, "single tenant") ||
		!strings.Contains(r.Stderr, "mailkey: hint: name the app's tenant: mailkey add "+acct+" --tenant TENANT") {
		t.Fatalf("login of a single-tenant app through common: %s", r)
	}
	if st := m.status(ctx, acct); st.State != "none" {
		t.Errorf("a refused login stored something: %+v", st)
	}
	// The device authorization endpoint answers the same, in its JSON error.
	if r := m.Run(ctx, "", "login", acct, "--device", "--no-qr"); r.Code == 0 || !strings.Contains(r.Stderr, "AADSTS50194") ||
		!strings.Contains(r.Stderr, "mailkey: hint: name the app's tenant: mailkey add "+acct+" --tenant TENANT") {
		t.Fatalf("device login of a single-tenant app through common: %s", r)
	}

	m.Must(ctx, "", append([]string{"add", acct}, s.MicrosoftFlags(e2e.MicrosoftTenant)...)...)
	if _, r := browserLogin(t, ctx, s, m, acct, e2e.Alice, e2e.AlicePassword); r.Code != 0 {
		t.Fatalf("login with the app's tenant: %s", r)
	}
	if st := m.status(ctx, acct); st.State != "valid" || st.Identity != e2e.Alice {
		t.Errorf("status after login with the app's tenant: %+v", st)
	}
}

// TestGoogleTestingExpiry proves that the stack's Google personality lets a refresh token of
// an app in "Testing" status die after seven days with Google's "Token has been expired or
// revoked.", that login warns of that deadline, and that mailkey test names the cause and
// the fix (publish the app).
func TestGoogleTestingExpiry(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("", 1)
	const acct = "gmail"
	m := newMailkey(t, leaks, "")
	m.Must(ctx, "", append([]string{"add", acct, "--email", e2e.Alice}, googlePreset.add(s)...)...)
	if _, r := browserLogin(t, ctx, s, m, acct, e2e.Alice, e2e.AlicePassword); r.Code != 0 || !strings.Contains(r.Stderr, "refresh token expires") {
		t.Fatalf("mailkey login (want a warning of the refresh token's deadline): %s", r)
	}
	m.Token(ctx, acct)

	if err := s.SetGoogleClock(e2e.GoogleTestingDays + 1); err != nil {
		t.Fatal(err)
	}
	m.EditRecord(ctx, acct, mailkeytest.Expired)
	r := m.Run(ctx, "", "test", acct, "--imap")
	if r.Code == 0 || !strings.Contains(r.Stderr+r.Stdout, "Token has been expired or revoked") ||
		!strings.Contains(r.Stderr+r.Stdout, "Testing status") || !strings.Contains(r.Stderr+r.Stdout, "Publish app") {
		t.Fatalf("mailkey test after the Testing-status expiry: %s", r)
	}
}
