package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/oauth2"

	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/sasl"
	"github.com/mailkey/mailkey/internal/tokens"
)

// dovecotChallenge is what Dovecot sends when it refuses a token over XOAUTH2.
var dovecotChallenge = &sasl.Failure{Status: "401", Schemes: "bearer", Scope: "mail"}

func refused(code, desc string) error {
	return &tokens.RefusedError{Account: "work", Code: code, Reason: desc, Err: &oauth2.RetrieveError{ErrorCode: code, ErrorDescription: desc}}
}

func needsLogin(code, reason string) error {
	return &tokens.NeedsLoginError{Account: "work", Code: code, Reason: reason}
}

// diagnoseCases holds, for every rule, at least one observation it must win.
var diagnoseCases = []struct {
	name string
	o    Observation
	want string
}{
	// token
	{"never logged in", Observation{Step: StepToken, TokenErr: &tokens.NeedsLoginError{Account: "work", Err: tokens.ErrNoToken}}, "no-token"},
	{"AADSTS50020", Observation{Step: StepToken, Provider: "microsoft", TokenErr: needsLogin("invalid_grant", "AADSTS50020: User account from identity provider does not exist in tenant")}, "aadsts-50020"},
	{"token endpoint changed", Observation{Step: StepToken, Provider: "microsoft", TokenErr: &tokens.EndpointChangedError{Account: "work", Stored: "https://login.microsoftonline.com/common/oauth2/v2.0/token", Configured: "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token"}}, "token-endpoint-changed"},
	{"AADSTS50194", Observation{Step: StepToken, Provider: "microsoft", TokenErr: needsLogin("invalid_request", "AADSTS50194: Application 'x'(mailkey) is not configured as a multi-tenant application. Usage of the /common endpoint is not supported for such applications created after '10/15/2018'. Use a tenant-specific endpoint or configure the application to be multi-tenant.")}, "aadsts-50194"},
	{"AADSTS50011 in a retrieve error", Observation{Step: StepToken, Provider: "microsoft", TokenErr: &oauth2.RetrieveError{ErrorCode: "invalid_request", ErrorDescription: "AADSTS50011: The redirect URI 'http://localhost:53117/' specified in the request does not match the redirect URIs configured for the application 'x'."}}, "aadsts-50011"},
	{"AADSTS650057", Observation{Step: StepToken, Provider: "microsoft", TokenErr: needsLogin("invalid_client", "AADSTS650057: Invalid resource. The client has requested access to a resource which is not listed in the requested permissions in the client's application registration.")}, "aadsts-650057"},
	{"AADSTS65001", Observation{Step: StepToken, TokenErr: needsLogin("invalid_grant", "AADSTS65001: The user or administrator has not consented")}, "aadsts-65001"},
	{"AADSTS70043", Observation{Step: StepToken, TokenErr: needsLogin("invalid_grant", "AADSTS70043: The refresh token has expired or is invalid due to sign-in frequency checks by conditional access")}, "aadsts-70043"},
	{"AADSTS700082", Observation{Step: StepToken, TokenErr: needsLogin("invalid_grant", "AADSTS700082: The refresh token has expired due to inactivity.")}, "aadsts-700082"},
	{"AADSTS50173", Observation{Step: StepToken, TokenErr: needsLogin("invalid_grant", "AADSTS50173: The provided grant has expired due to it being revoked")}, "aadsts-50173"},
	{"AADSTS50076", Observation{Step: StepToken, TokenErr: needsLogin("interaction_required", "AADSTS50076: Due to a configuration change made by your administrator, you must use multi-factor authentication")}, "aadsts-50076"},
	{"AADSTS53003", Observation{Step: StepToken, TokenErr: needsLogin("invalid_grant", "AADSTS53003: Access has been blocked by Conditional Access policies.")}, "aadsts-53003"},
	{"AADSTS7000112", Observation{Step: StepToken, TokenErr: needsLogin("unauthorized_client", "AADSTS7000112: Application is disabled.")}, "aadsts-7000112"},
	{"AADSTS7000218 in a retrieve error", Observation{Step: StepToken, TokenErr: &oauth2.RetrieveError{ErrorCode: "invalid_client", ErrorDescription: "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'."}}, "aadsts-7000218"},
	{"AADSTS54005", Observation{Step: StepToken, TokenErr: needsLogin("invalid_grant", "AADSTS54005: OAuth2 Authorization code was already redeemed")}, "aadsts-54005"},
	{"AADSTS700016 at authenticate (refresh)", Observation{Step: StepAuthenticate, Protocol: provider.IMAP, TokenErr: needsLogin("unauthorized_client", "AADSTS700016: Application with identifier 'x' was not found in the directory 'contoso'.")}, "aadsts-700016"},
	{"AADSTS500011", Observation{Step: StepToken, TokenErr: needsLogin("invalid_resource", "AADSTS500011: The resource principal named https://outlook.office.com was not found in the tenant")}, "aadsts-500011"},
	{"google device flow invalid_scope", Observation{Step: StepToken, Provider: "google", TokenErr: &oauth2.RetrieveError{ErrorCode: "invalid_scope", ErrorDescription: "Invalid device flow scope: https://mail.google.com/"}}, "google-device-scope"},
	{"invalid_scope elsewhere", Observation{Step: StepToken, Provider: "generic", TokenErr: &oauth2.RetrieveError{ErrorCode: "invalid_scope"}}, "invalid-scope"},
	{"google testing status", Observation{Step: StepToken, Provider: "google", TokenErr: needsLogin("invalid_grant", "Token has been expired or revoked.")}, "google-testing-expiry"},
	{"AADSTS7000215", Observation{Step: StepToken, Provider: "microsoft", Flow: "client_credentials", TokenErr: refused("invalid_client", "AADSTS7000215: Invalid client secret provided.")}, "aadsts-7000215"},
	{"AADSTS7000222", Observation{Step: StepToken, Flow: "client_credentials", TokenErr: refused("invalid_client", "AADSTS7000222: The provided client secret keys for app 'x' are expired.")}, "aadsts-7000222"},
	{"AADSTS700027", Observation{Step: StepToken, Flow: "client_credentials", TokenErr: refused("invalid_client", "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application.")}, "aadsts-700027"},
	{"AADSTS1002012", Observation{Step: StepToken, Flow: "client_credentials", TokenErr: refused("invalid_scope", "AADSTS1002012: The provided value for scope IMAP.AccessAsUser.All is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.")}, "aadsts-1002012"},
	{"service account without delegation", Observation{Step: StepToken, Provider: "google", Flow: "service_account", TokenErr: refused("unauthorized_client", "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.")}, "service-account-refused"},
	{"service account for an unknown mailbox", Observation{Step: StepToken, Provider: "google", Flow: "service_account", TokenErr: refused("invalid_grant", "Invalid email or User ID")}, "service-account-refused"},
	{"client credentials refused", Observation{Step: StepToken, Provider: "generic", Flow: "client_credentials", TokenErr: refused("invalid_client", "client authentication failed")}, "app-only-refused"},
	{"client secret rejected on refresh", Observation{Step: StepToken, Provider: "generic", TokenErr: &tokens.ClientConfigError{Account: "work", Code: "invalid_client", Reason: "client authentication failed"}}, "client-rejected"},
	{"client secret rejected at authenticate (refresh)", Observation{Step: StepAuthenticate, Protocol: provider.IMAP, Inactive: true, Failure: dovecotChallenge, TokenErr: &tokens.ClientConfigError{Account: "work", Code: "unauthorized_client"}}, "client-rejected"},
	{"expired Microsoft secret on refresh", Observation{Step: StepToken, Provider: "microsoft", TokenErr: &tokens.ClientConfigError{Account: "work", Code: "invalid_client", Reason: "AADSTS7000222: The provided client secret keys for app 'x' are expired."}}, "aadsts-7000222"},
	{"invalid_grant elsewhere", Observation{Step: StepToken, Provider: "generic", TokenErr: needsLogin("invalid_grant", "grant request is invalid")}, "grant-revoked"},
	{"refresh failed for good at authenticate", Observation{Step: StepAuthenticate, Protocol: provider.IMAP, Inactive: true, Failure: dovecotChallenge, TokenErr: needsLogin("invalid_grant", "")}, "grant-revoked"},
	{"provider down", Observation{Step: StepToken, TokenErr: &tokens.TransientError{Account: "work", Err: syscall.ECONNREFUSED}}, "provider-unreachable"},
	{"store error", Observation{Step: StepToken, TokenErr: errors.New("store locked")}, "token-error"},
	// connect
	{"no server", Observation{Step: StepConnect, Err: ErrNoServer}, "no-server"},
	{"dns", Observation{Step: StepConnect, Err: &net.DNSError{Err: "no such host", Name: "imap.example.invalid", IsNotFound: true}}, "dns"},
	{"refused", Observation{Step: StepConnect, Err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}, "connection-refused"},
	{"unreachable", Observation{Step: StepConnect, Err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ENETUNREACH)}}, "unreachable"},
	{"connect timeout", Observation{Step: StepConnect, Err: fmt.Errorf("%w after 15s: dial tcp: i/o timeout", errTimedOut)}, "connect-timeout"},
	{"connect other", Observation{Step: StepConnect, Err: errors.New("socket: too many open files")}, "connect-failed"},
	// tls
	{"unknown authority", Observation{Step: StepTLS, Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}, "tls-unknown-authority"},
	{"name mismatch", Observation{Step: StepTLS, Err: &tls.CertificateVerificationError{Err: x509.HostnameError{Certificate: &x509.Certificate{DNSNames: []string{"other"}}, Host: "imap.example.com"}}}, "tls-name-mismatch"},
	{"expired", Observation{Step: StepTLS, Err: &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.Expired}}}, "tls-expired"},
	{"not tls", Observation{Step: StepTLS, Err: tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}}, "tls-not-tls"},
	{"no STARTTLS", Observation{Step: StepTLS, Protocol: provider.POP3, Err: errNoSTARTTLS}, "starttls-refused"},
	{"STARTTLS refused", Observation{Step: StepTLS, Protocol: provider.IMAP, Err: errors.New("imap: NO"), Reply: "STARTTLS not available"}, "starttls-refused"},
	{"greeting refused", Observation{Step: StepTLS, Protocol: provider.IMAP, Reply: "too many connections", Greeting: true}, "server-refused-connection"},
	{"certificate expires soon", Observation{Step: StepTLS, Protocol: provider.IMAP, CertExpiresSoon: true}, "tls-expires-soon"},
	{"greeting timeout", Observation{Step: StepTLS, Err: context.DeadlineExceeded}, "tls-timeout"},
	{"tls other", Observation{Step: StepTLS, Err: errors.New("remote error: tls: protocol version not supported")}, "tls-failed"},
	// capabilities
	{"no oauth", Observation{Step: StepCapabilities, Err: &sasl.NoMechanismError{Offered: []string{"PLAIN", "LOGIN"}}, Offered: []string{"PLAIN", "LOGIN"}}, "no-oauth-mechanism"},
	{"capa failed", Observation{Step: StepCapabilities, Err: errors.New("pop3: malformed response")}, "capabilities-failed"},
	// authenticate
	{"imap unavailable", Observation{Step: StepAuthenticate, Protocol: provider.IMAP, Code: "UNAVAILABLE", Reply: "Temporary authentication failure."}, "server-temporary"},
	{"pop3 sys/temp", Observation{Step: StepAuthenticate, Protocol: provider.POP3, Code: "SYS/TEMP", Reply: "-ERR [SYS/TEMP] Temporary authentication failure."}, "server-temporary"},
	{"smtp 454", Observation{Step: StepAuthenticate, Protocol: provider.SMTP, SMTPCode: 454, Code: "4.7.0"}, "server-temporary"},
	{"5.7.139", Observation{Step: StepAuthenticate, Protocol: provider.SMTP, SMTPCode: 535, Code: "5.7.139", Reply: "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant."}, "ms-smtp-auth-disabled"},
	{"5.7.3", Observation{Step: StepAuthenticate, Protocol: provider.SMTP, SMTPCode: 535, Code: "5.7.3", Reply: "Authentication unsuccessful"}, "ms-5.7.3"},
	{"wrong user", Observation{Step: StepAuthenticate, Protocol: provider.IMAP, Email: "bob@example.test", Identity: "alice@example.test", Failure: dovecotChallenge}, "token-wrong-user"},
	{"wrong user seen in the token", Observation{Step: StepToken, Email: "bob@example.test", Identity: "Alice@example.test"}, "token-wrong-user"},
	{"same user, other case", Observation{Step: StepToken, Email: "alice@example.test", Identity: "Alice@Example.test", Scopes: []string{"mail"}, Needed: []string{"mail"}}, ""},
	{"missing scope", Observation{Step: StepAuthenticate, Protocol: provider.POP3, Reply: "-ERR [AUTH] Authentication failed.", Code: "AUTH", Failure: dovecotChallenge, Scopes: []string{"openid", "email"}, Needed: []string{"mail"}}, "token-missing-scope"},
	{"microsoft short scope names count", Observation{Step: StepToken, Scopes: []string{"IMAP.AccessAsUser.All"}, Needed: []string{"https://outlook.office.com/IMAP.AccessAsUser.All"}}, ""},
	{"microsoft scope missing", Observation{Step: StepToken, Scopes: []string{"SMTP.Send"}, Needed: []string{"https://outlook.office.com/IMAP.AccessAsUser.All"}}, "token-missing-scope"},
	{"inactive, refreshed", Observation{Step: StepAuthenticate, Protocol: provider.IMAP, Failure: dovecotChallenge, Inactive: true, Refreshed: true}, "token-inactive"},
	{"stale, refreshed", Observation{Step: StepAuthenticate, Protocol: provider.SMTP, SMTPCode: 535, Refreshed: true}, "token-stale"},
	{"inactive, no refresh", Observation{Step: StepAuthenticate, Protocol: provider.IMAP, Failure: dovecotChallenge, Inactive: true}, "token-inactive-login"},
	{"delegate without access", Observation{Step: StepAuthenticate, Protocol: provider.IMAP, Email: "bob@example.test", Mailbox: "shared@example.test", Identity: "bob@example.test", Failure: dovecotChallenge}, "shared-mailbox-no-access"},
	{"delegate without access, exchange", Observation{Step: StepCommand, Protocol: provider.IMAP, Email: "bob@contoso.com", Mailbox: "shared@contoso.com", Reply: "User is authenticated but not connected."}, "shared-mailbox-no-access"},
	{"delegate without access, 5.7.3", Observation{Step: StepAuthenticate, Protocol: provider.SMTP, Email: "bob@contoso.com", Mailbox: "shared@contoso.com", SMTPCode: 535, Code: "5.7.3", Reply: "Authentication unsuccessful"}, "shared-mailbox-no-access"},
	{"delegate without send as", Observation{Step: StepSend, Protocol: provider.SMTP, Email: "alice@contoso.com", Mailbox: "shared@contoso.com", SMTPCode: 550, Code: "5.7.60", Reply: "SendAsDenied"}, "shared-mailbox-send-as"},
	{"delegate signed in as another user", Observation{Step: StepAuthenticate, Protocol: provider.IMAP, Email: "bob@example.test", Mailbox: "shared@example.test", Identity: "carol@example.test", Failure: dovecotChallenge}, "token-wrong-user"},
	{"rejected, nothing known", Observation{Step: StepAuthenticate, Protocol: provider.IMAP, Code: "AUTHENTICATIONFAILED", Reply: "Authentication failed."}, "token-rejected"},
	{"rejected, second attempt", Observation{Step: StepRetry, Protocol: provider.SMTP, SMTPCode: 535, Code: "5.7.8"}, "token-rejected"},
	{"auth other", Observation{Step: StepAuthenticate, Protocol: provider.IMAP, Err: errors.New("imapclient: connection closed")}, "auth-failed"},
	// command
	{"exchange not connected", Observation{Step: StepCommand, Protocol: provider.IMAP, Reply: "User is authenticated but not connected."}, "ms-not-connected"},
	{"command temporary", Observation{Step: StepCommand, Protocol: provider.POP3, Code: "SYS/TEMP"}, "command-temporary"},
	{"command failed", Observation{Step: StepCommand, Protocol: provider.SMTP, SMTPCode: 550, Code: "5.7.1", Err: errors.New("smtp: 550")}, "command-failed"},
	// send
	{"send as denied", Observation{Step: StepSend, Protocol: provider.SMTP, SMTPCode: 550, Code: "5.7.60"}, "ms-send-as-denied"},
	{"send refused", Observation{Step: StepSend, Protocol: provider.SMTP, SMTPCode: 550, Code: "5.1.1", Err: errors.New("smtp: 550")}, "send-failed"},
	// any
	{"timeout elsewhere", Observation{Step: "quit", Err: fmt.Errorf("%w after 1m0s: read: i/o timeout", errTimedOut)}, "timeout"},
	{"nothing to say", Observation{Step: "quit", Err: errors.New("eof")}, ""},
}

func TestDiagnose(t *testing.T) {
	for _, tc := range diagnoseCases {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.Account, o.Host, o.Port = "work", "imap.example.com", 993
			if o.Email == "" {
				o.Email = "alice@example.test"
			}
			d := Diagnose(&o)
			got := ""
			if d != nil {
				got = d.ID
			}
			if got != tc.want {
				t.Fatalf("Diagnose = %q, want %q", got, tc.want)
			}
			if d == nil {
				return
			}
			for _, s := range []string{d.Cause, d.Fix} {
				if s == "" || strings.ContainsAny(s, "{}") {
					t.Errorf("unfilled text %q", s)
				}
			}
		})
	}
}

// Every rule has a case above that it wins: a rule shadowed by an earlier
// one, or one without a test, fails here.
func TestEveryRuleTested(t *testing.T) {
	tested := map[string]bool{}
	for _, tc := range diagnoseCases {
		tested[tc.want] = true
	}
	seen := map[string]bool{}
	for _, r := range Rules() {
		if seen[r.ID] {
			t.Errorf("rule %s appears twice", r.ID)
		}
		seen[r.ID] = true
		if !tested[r.ID] {
			t.Errorf("rule %s has no test case", r.ID)
		}
		if r.Symptom == "" || r.Cause == "" || r.Fix == "" || r.Step == "" {
			t.Errorf("rule %s is incomplete", r.ID)
		}
	}
}

// The fixes Microsoft's docs give for 5.7.139, word for word.
func TestSMTPAuthDisabledFix(t *testing.T) {
	d := Diagnose(&Observation{Step: StepAuthenticate, Protocol: provider.SMTP, SMTPCode: 535, Code: "5.7.139", Email: "a@contoso.com"})
	for _, want := range []string{
		"Set-CASMailbox -Identity a@contoso.com -SmtpClientAuthenticationDisabled $false",
		"Set-TransportConfig -SmtpClientAuthenticationDisabled $false",
	} {
		if !strings.Contains(d.Fix, want) {
			t.Errorf("fix %q lacks %q", d.Fix, want)
		}
	}
}

// docs/troubleshooting.md is generated from the table.
func TestTroubleshootingDocUpToDate(t *testing.T) {
	const path = "../../docs/troubleshooting.md"
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run go generate ./internal/check", err)
	}
	if string(got) != string(Markdown()) {
		t.Fatalf("%s is out of date with the diagnosis table: run go generate ./internal/check", path)
	}
	for _, r := range Rules() {
		if !strings.Contains(string(got), "`"+r.ID+"`") {
			t.Errorf("the page lacks rule %s", r.ID)
		}
	}
	if strings.ContainsAny(string(Markdown()), "{}") {
		t.Error("the page holds an unreplaced placeholder")
	}
}

// mailkey add --scope replaces the account's scopes: a fix that offered
// "mailkey add ACCOUNT --scope SCOPE" alone made a user who followed it
// drop every other scope (openid, offline_access) of the account.
func TestMissingScopeFixKeepsOtherScopes(t *testing.T) {
	d := Diagnose(&Observation{Step: StepToken, Account: "work", Scopes: []string{"openid", "email"}, Needed: []string{"mail"}})
	if d == nil || d.ID != "token-missing-scope" {
		t.Fatalf("Diagnose = %+v", d)
	}
	if strings.Contains(d.Fix, "--scope mail") || !strings.Contains(d.Fix, "replaces the whole list") {
		t.Errorf("fix %q must say that --scope replaces the list", d.Fix)
	}
}

// The page's legend explains every placeholder word the rules use.
func TestTroubleshootingLegend(t *testing.T) {
	page := string(Markdown())
	start := strings.Index(page, "In the fixes below")
	end := strings.Index(page, "\n## ")
	if start < 0 || end < start {
		t.Fatal("the page has no legend before its first section")
	}
	legend := page[start:end]
	for i := 1; i < len(placeholderNames); i += 2 {
		if !strings.Contains(legend, placeholderNames[i]+" ") {
			t.Errorf("the legend does not explain %s", placeholderNames[i])
		}
	}
}

// TestTemporaryRules pins which diagnoses make mailkey test exit 75
// (EX_TEMPFAIL): those a wait may cure, and no others.
func TestTemporaryRules(t *testing.T) {
	want := []string{"provider-unreachable", "connect-timeout", "server-temporary", "command-temporary", "timeout"}
	var got []string
	for _, r := range Rules() {
		if r.Temporary {
			got = append(got, r.ID)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("temporary rules %q, want %q", got, want)
	}
}
