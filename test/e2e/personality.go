package e2e

import (
	"net/http"
	"net/url"
	"strconv"
)

// Provider personalities: the stack's provider also answers as Google and as the Microsoft
// identity platform do (see op/server.mjs), so that the google, microsoft and outlook presets
// run against it with only their endpoints and mail servers overridden (GoogleFlags,
// MicrosoftFlags).
const (
	// ClientGoogle is a Google "Desktop app" client (with a secret) at GoogleAuthPath and
	// GoogleTokenPath: a refresh token only for access_type=offline with prompt=consent,
	// refresh tokens that die after GoogleTestingDays (an app in "Testing" status), and
	// Google's invalid_grant "Token has been expired or revoked.".
	ClientGoogle       = "mail-google"
	ClientGoogleSecret = "mail-google-secret"
	GoogleAuthPath     = "/google/auth"
	GoogleTokenPath    = "/google/token"
	GoogleTestingDays  = 7

	// ClientMicrosoft is a multi-tenant Entra app (public client); ClientMicrosoftSingle is
	// registered in MicrosoftTenant only and gets AADSTS50194 at common and organizations.
	ClientMicrosoft       = "mail-ms"
	ClientMicrosoftSingle = "mail-ms-single"
	// MicrosoftTenant is the directory of alice, bob and carol (also named by the domain
	// example.test); ConsumerTenant is the tenant of personal accounts, where the same users
	// sign in as Outlook.com users.
	MicrosoftTenant = "3c0c8e8a-9b3f-4d8e-a7c1-5d2f6b1e4a90"
	ConsumerTenant  = "9188040d-6c67-4c5b-b112-36a304b66dad"
)

// MicrosoftAuthority is the personality's login host for tenant, as
// https://login.microsoftonline.com/{tenant} is Microsoft's.
func (s *Stack) MicrosoftAuthority(tenant string) string { return s.Issuer + "/ms/" + tenant }

// GoogleFlags are the mailkey add flags that point the google preset at the stack: its
// endpoints (revocation too), issuer and mail servers (implicit TLS, as Gmail's), and the stack's CA.
func (s *Stack) GoogleFlags() []string {
	return []string{
		"--issuer", s.Issuer,
		"--auth-url", s.Issuer + GoogleAuthPath, "--token-url", s.Issuer + GoogleTokenPath,
		"--revoke-url", s.RevocationURL,
		"--imap", s.IMAPS, "--pop3", s.POP3S, "--smtp", s.Submissions, "--ca-file", s.CAFile,
	}
}

// MicrosoftFlags are the mailkey add flags that point the microsoft or outlook preset, with
// tenant, at the stack: its endpoints under MicrosoftAuthority(tenant), the issuer, and the mail
// servers (STARTTLS submission, as Exchange Online's).
func (s *Stack) MicrosoftFlags(tenant string) []string {
	a := s.MicrosoftAuthority(tenant)
	return []string{
		"--tenant", tenant, "--issuer", a + "/v2.0",
		"--auth-url", a + "/oauth2/v2.0/authorize", "--token-url", a + "/oauth2/v2.0/token",
		"--device-url", a + "/oauth2/v2.0/devicecode",
		"--imap", s.IMAPS, "--pop3", s.POP3S, "--smtp", s.Submission, "--ca-file", s.CAFile,
	}
}

// PresetFlags are the mailkey add flags (after ACCOUNT, without --email) of an account of
// preset google, microsoft (tenant common) or outlook (tenant consumers) at the stack's
// personality of that provider, with its client; nil for another preset.
func (s *Stack) PresetFlags(preset string) []string {
	switch preset {
	case "google":
		return append([]string{"--provider", "google", "--client-id", ClientGoogle, "--client-secret", ClientGoogleSecret}, s.GoogleFlags()...)
	case "microsoft":
		return append([]string{"--provider", "microsoft", "--client-id", ClientMicrosoft}, s.MicrosoftFlags("common")...)
	case "outlook":
		return append([]string{"--provider", "outlook", "--client-id", ClientMicrosoft}, s.MicrosoftFlags("consumers")...)
	}
	return nil
}

// SetGoogleClock moves the Google personality's clock days ahead: its refresh tokens then
// are that much older (0 puts it back).
func (s *Stack) SetGoogleClock(days int) error {
	return s.control("/__test/clock", url.Values{"days": {strconv.Itoa(days)}}, http.StatusOK)
}
