package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/oauth2"

	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/sasl"
	"github.com/mailkey/mailkey/internal/tokens"
)

// Diagnosis is the cause of a failed step and what to do about it.
type Diagnosis struct {
	// ID names the rule that matched; docs/troubleshooting.md has a
	// section per ID.
	ID    string `json:"id"`
	Cause string `json:"cause"`
	Fix   string `json:"fix"`
	// Temporary: the failure may pass by itself (Rule.Temporary).
	Temporary bool `json:"temporary,omitempty"`
}

// Observation is what a failed (or doubtful) step saw: the input of the
// rules. Fields that do not apply are zero.
type Observation struct {
	Step     string
	Protocol provider.Protocol
	Provider string // preset name
	Flow     string // "", "client_credentials" or "service_account"
	Account  string
	Email    string // who signs in
	Mailbox  string // the shared mailbox opened, "" for Email's own
	Host     string
	Port     int
	Err      error // the step's error

	// The server's answer.
	Reply    string        // its text (IMAP text, POP3 status line, SMTP message)
	Code     string        // IMAP response code, POP3 extended code, or SMTP enhanced code "5.7.139"
	SMTPCode int           // SMTP reply code
	Failure  *sasl.Failure // the SASL error challenge, if one came
	Greeting bool          // the server refused the connection in its greeting
	// CertExpiresSoon: the verified certificate expires within two weeks.
	CertExpiresSoon bool
	Offered         []string // SASL mechanisms the server offered

	// What is known about the token.
	Identity  string   // the user it was issued to
	Scopes    []string // its scopes; nil when unknown
	Needed    []string // scopes the server or the provider preset requires
	Inactive  bool     // the provider's introspection says active:false
	Refreshed bool     // a refreshed token then authenticated
	TokenErr  error    // getting or refreshing the token failed
}

// Rule maps an observation to a cause and a fix. Fix and Cause may hold
// placeholders, filled in from the observation: {account}, {email},
// {host}, {port}, {protocol}, {scope} (the missing scopes), {identity},
// {offered}, {code} and {reply} (the server's text).
type Rule struct {
	ID      string
	Step    string // where it shows in the checklist
	Symptom string // what the user sees, for the documentation
	Cause   string
	Fix     string
	// Temporary: the failure may pass by itself, without a change to the
	// account or the provider (a server or network that is down or slow).
	Temporary bool
	match     func(o *Observation) bool
}

// Rules returns the diagnosis table in matching order: the first rule
// whose condition holds wins.
func Rules() []Rule { return slices.Clone(rules) }

// Diagnose returns the diagnosis for o, or nil when no rule matches.
func Diagnose(o *Observation) *Diagnosis {
	for i := range rules {
		if rules[i].match(o) {
			return rules[i].diagnosis(o)
		}
	}
	return nil
}

func (r *Rule) diagnosis(o *Observation) *Diagnosis {
	rep := o.replacer()
	return &Diagnosis{ID: r.ID, Cause: rep.Replace(r.Cause), Fix: rep.Replace(r.Fix), Temporary: r.Temporary}
}

func (o *Observation) replacer() *strings.Replacer {
	offered := "nothing"
	if len(o.Offered) > 0 {
		offered = strings.Join(o.Offered, " ")
	}
	return strings.NewReplacer(
		"{account}", o.Account, "{email}", o.Email, "{mailbox}", o.Mailbox, "{host}", o.Host,
		"{port}", itoa(o.Port), "{protocol}", strings.ToUpper(string(o.Protocol)),
		"{scope}", strings.Join(o.missingScopes(), " "), "{identity}", o.Identity,
		"{offered}", offered, "{code}", o.code(), "{reply}", o.Reply,
	)
}

// placeholderNames pairs each placeholder with the word that stands for
// it in the documentation; the page's legend explains every word.
var placeholderNames = []string{
	"{account}", "ACCOUNT", "{email}", "ADDR", "{mailbox}", "MAILBOX", "{host}", "HOST", "{port}", "PORT",
	"{protocol}", "PROTOCOL", "{scope}", "SCOPE", "{identity}", "OTHER-ADDR",
	"{offered}", "MECHANISMS", "{code}", "CODE", "{reply}", "REPLY",
}

// placeholders writes the placeholders as their documentation words.
var placeholders = strings.NewReplacer(placeholderNames...)

// The table. Keep it in the order the checklist runs; put specific rules
// before general ones of the same step.
var rules = []Rule{
	// ------------------------------------------------------------ token
	{
		ID: "no-token", Step: StepToken,
		Symptom: "the account has no token yet",
		Cause:   "nobody has logged in to this account yet",
		Fix:     "mailkey login {account}",
		match:   func(o *Observation) bool { return errors.Is(o.TokenErr, tokens.ErrNoToken) },
	},
	{
		ID: "token-endpoint-changed", Step: StepToken,
		Symptom: "the token endpoint changed since the login",
		Cause:   "the grant was issued by another token endpoint than the one the account names now (its tenant, cloud, issuer or token_url changed), and mailkey does not send a refresh token to an endpoint that did not issue it",
		Fix:     "log in through the new endpoint: mailkey login {account}; or restore the account's earlier tenant, cloud, issuer or token_url, and the stored login works again",
		match:   func(o *Observation) bool { return errors.As(o.TokenErr, new(*tokens.EndpointChangedError)) },
	},
	aadsts("50020", "the user signed in with an account from an identity provider or tenant the app's tenant does not accept (a personal Microsoft account on a work-only app, or a guest not invited)",
		"sign in with an account of the tenant, or set tenant = \"common\" (work and personal accounts) or \"consumers\" in the account, then: mailkey login {account}"),
	aadsts("50194", "the app is registered for one directory only (single tenant), and the account signs in through common or organizations, which single-tenant apps cannot use",
		"name the app's tenant: mailkey add {account} --tenant TENANT (the Directory (tenant) ID on the app registration's overview page, or a verified domain), then: mailkey login {account}"),
	aadsts("50011", "the redirect URI mailkey sent (http://localhost or http://127.0.0.1 with a port, for the browser login) is not registered for the app",
		"in the app registration → Authentication → Add a platform → Mobile and desktop applications, add http://localhost as a custom redirect URI (any port is accepted on it); then: mailkey login {account}, or log in without a redirect: mailkey login {account} --device"),
	aadsts("650057", "the app asks for a permission its registration does not list (an Exchange scope such as IMAP.AccessAsUser.All, or the .default of another cloud's Exchange resource)",
		"in the app registration → API permissions, add the mail permissions (delegated: IMAP.AccessAsUser.All, POP.AccessAsUser.All, SMTP.Send and offline_access; app-only: Office 365 Exchange Online → IMAP.AccessAsApp, POP.AccessAsApp, SMTP.SendAsApp) and grant consent, and check the account's cloud and scopes; then: mailkey login {account}"),
	aadsts("65001", "the user or an administrator has not consented to the scopes the app asks for (the tenant may forbid user consent)",
		"an administrator grants consent: Entra admin center → Enterprise applications → the app → Permissions → Grant admin consent; then: mailkey login {account}"),
	aadsts("70043", "the refresh token expired under a Conditional Access sign-in frequency policy",
		"log in again: mailkey login {account} (the policy decides how often this is needed)"),
	aadsts("700082", "the refresh token expired after 90 days without use",
		"log in again: mailkey login {account}; mailkey serve refreshes tokens in the background and keeps them alive"),
	aadsts("50173", "the grant expired because the user's password changed or sessions were revoked",
		"log in again: mailkey login {account}"),
	aadsts("50076", "multi-factor authentication is now required for this sign-in",
		"log in again in the browser and complete MFA: mailkey login {account}"),
	aadsts("53003", "a Conditional Access policy blocked the sign-in (device, location or app not allowed)",
		"ask the tenant administrator to allow this sign-in; the policy's name is in the Entra sign-in logs"),
	aadsts("7000112", "the application is disabled in the tenant",
		"an administrator enables it: Entra admin center → Enterprise applications → the app → Properties → Enabled for users to sign in = Yes"),
	aadsts("7000218", "the app registration is confidential: the token endpoint wants a client secret or certificate",
		"set client_secret (or client_secret_cmd) in the account, or allow public client flows in the app registration (Authentication → Allow public client flows = Yes)"),
	aadsts("54005", "an authorization code was redeemed twice (a retried or replayed login)",
		"log in again: mailkey login {account}"),
	aadsts("700016", "no application with this client_id exists in the tenant (wrong client_id, a single-tenant app used with another tenant, or an app registered in another Microsoft cloud)",
		"check client_id in the account, set tenant to the tenant the app is registered in (mailkey add {account} --tenant TENANT), and, for GCC High, DoD or China, the cloud it is registered in (mailkey add {account} --cloud CLOUD); then: mailkey login {account}"),
	aadsts("500011", "the resource (Exchange Online) is not available in the tenant: no Exchange Online licence, or a typo in the scope",
		"check the mailbox has an Exchange Online licence and the scopes are https://outlook.office.com/… (or https://outlook.office365.com/.default for app-only)"),
	aadsts("7000215", "the client secret is wrong: it is not the secret's value (the portal shows a secret ID beside it), or it belongs to another app",
		"create a new client secret in the app registration (Certificates & secrets), copy its Value, and put it in client_secret (or client_secret_cmd); then: mailkey token {account}"),
	aadsts("7000222", "the client secret has expired",
		"create a new client secret in the app registration (Certificates & secrets) and replace client_secret; then: mailkey token {account}"),
	aadsts("700027", "the client assertion was not accepted: the certificate is not uploaded to the app registration, or it expired",
		"upload the certificate (the public part of certificate_file) in the app registration → Certificates & secrets → Certificates; then: mailkey token {account}"),
	aadsts("1002012", "an app-only token was asked for with scopes a client credentials request may not carry: it needs a single .default scope",
		"remove scopes from the account to use the preset's, or set scopes = [\"https://outlook.office365.com/.default\"]; then: mailkey token {account}"),
	{
		ID: "google-device-scope", Step: StepToken,
		Symptom: "invalid_scope from Google",
		Cause:   "Google refuses the mail scope https://mail.google.com/ here: the device flow does not allow it, or the scope is not enabled for the OAuth client",
		Fix:     "log in with the browser or paste flow instead of --device: mailkey login {account} (or mailkey login {account} --paste); check the consent screen lists https://mail.google.com/",
		match: func(o *Observation) bool {
			code, _ := o.oauthError()
			return code == "invalid_scope" && o.preset().DeviceRejectsScopes
		},
	},
	{
		ID: "invalid-scope", Step: StepToken,
		Symptom: "invalid_scope from the token endpoint",
		Cause:   "the provider does not know or does not allow a scope the account asks for; a refresh asks only for the scopes the login granted, and the stored login is kept",
		Fix:     "check the account's scopes (mailkey config check) against what the provider offers; after changing them: mailkey login {account}",
		match: func(o *Observation) bool {
			code, _ := o.oauthError()
			return code == "invalid_scope"
		},
	},
	{
		ID: "google-testing-expiry", Step: StepToken,
		Symptom: "invalid_grant \"Token has been expired or revoked\" from Google, a week after login",
		Cause:   "the Google Cloud project's OAuth consent screen is in Testing status: Google lets its refresh tokens live 7 days",
		Fix:     "publish the app (Google Cloud console → APIs & Services → OAuth consent screen → Publish app, \"In production\"), then: mailkey login {account}",
		match: func(o *Observation) bool {
			code, desc := o.oauthError()
			return o.preset().RefreshLimit != "" && code == "invalid_grant" && strings.Contains(strings.ToLower(desc), "expired or revoked")
		},
	},
	{
		ID: "service-account-refused", Step: StepToken,
		Symptom: "the provider refuses a service account's token request (unauthorized_client, invalid_grant)",
		Cause:   "the service account may not act for {email}: domain-wide delegation is missing, names another client ID or lacks the mail scope, or {email} is not a mailbox of the Workspace domain",
		Fix:     "Google Admin console → Security → Access and data control → API controls → Manage domain-wide delegation: add the service account's client ID with the scope https://mail.google.com/ (it can take a while to apply); check email in the account; then: mailkey token {account}",
		match: func(o *Observation) bool {
			var rf *tokens.RefusedError
			return o.Flow == "service_account" && errors.As(o.TokenErr, &rf)
		},
	},
	{
		ID: "app-only-refused", Step: StepToken,
		Symptom: "the provider refuses an app-only (client credentials) token request",
		Cause:   "the app's credentials or permissions are wrong: a wrong or expired client secret or certificate, or the app lacks the permission it asks for",
		Fix:     "check client_secret or certificate_file in the account, and the app's application permissions with admin consent (Microsoft 365: Office 365 Exchange Online → IMAP.AccessAsApp, POP.AccessAsApp, SMTP.SendAsApp); then: mailkey token {account}",
		match: func(o *Observation) bool {
			var rf *tokens.RefusedError
			return errors.As(o.TokenErr, &rf)
		},
	},
	{
		ID: "client-rejected", Step: StepToken,
		Symptom: "the provider rejects the app's client credentials or the scopes when refreshing (invalid_client, unauthorized_client, invalid_scope)",
		Cause:   "the account's OAuth client is misconfigured: its client secret or certificate is wrong or expired, its registration may not refresh tokens, or the account asks for scopes the login did not grant; the user's login is fine, and mailkey keeps it",
		Fix:     "check client_secret (or client_secret_cmd), the certificate and the scopes of account {account} against the app's registration in the provider's console (create a new secret if it expired); no login is needed: then run mailkey token {account}",
		match: func(o *Observation) bool {
			var ce *tokens.ClientConfigError
			return errors.As(o.TokenErr, &ce)
		},
	},
	{
		ID: "grant-revoked", Step: StepToken,
		Symptom: "the provider refuses to refresh the token (invalid_grant and the like)",
		Cause:   "the grant is no longer valid: it was revoked (logout, an administrator, a password change) or it expired",
		Fix:     "mailkey login {account}",
		match: func(o *Observation) bool {
			var nl *tokens.NeedsLoginError
			return errors.As(o.TokenErr, &nl)
		},
	},
	{
		ID: "provider-unreachable", Step: StepToken,
		Symptom:   "the token could not be refreshed: network error, timeout or HTTP 5xx",
		Cause:     "the provider's token endpoint could not be reached or failed, and the stored token has expired; the stored refresh token is kept",
		Fix:       "try again in a moment; check the network and the provider's status page",
		Temporary: true,
		match: func(o *Observation) bool {
			var te *tokens.TransientError
			return errors.As(o.TokenErr, &te)
		},
	},
	{
		ID: "token-error", Step: StepToken,
		Symptom: "any other failure to get a token",
		Cause:   "mailkey could not get a token for the account",
		Fix:     "mailkey status {account} shows the stored token; mailkey login {account} gets a new one",
		match:   func(o *Observation) bool { return o.TokenErr != nil },
	},

	// ------------------------------------------------------------ connect
	{
		ID: "no-server", Step: StepConnect,
		Symptom: "the account has no server for the protocol",
		Cause:   "neither the account nor its provider preset names a {protocol} server",
		Fix:     "add one: mailkey add {account} --imap imaps://HOST:993 (or --pop3, --smtp)",
		match:   func(o *Observation) bool { return errors.Is(o.Err, ErrNoServer) },
	},
	{
		ID: "dns", Step: StepConnect,
		Symptom: "the host name does not resolve",
		Cause:   "{host} has no address in DNS (a typo, or no network)",
		Fix:     "check the server's host name in the account (mailkey config check) and the network",
		match: func(o *Observation) bool {
			var de *net.DNSError
			return o.Step == StepConnect && errors.As(o.Err, &de) && !de.IsTimeout
		},
	},
	{
		ID: "connection-refused", Step: StepConnect,
		Symptom: "connection refused",
		Cause:   "nothing listens on {host} port {port}, or a firewall rejects the connection",
		Fix:     "check the port and scheme: imaps:// 993, imap:// 143, pop3s:// 995, pop3:// 110, smtps:// 465, smtp:// 587",
		match: func(o *Observation) bool {
			return o.Step == StepConnect && errors.Is(o.Err, syscall.ECONNREFUSED)
		},
	},
	{
		ID: "unreachable", Step: StepConnect,
		Symptom: "network or host unreachable",
		Cause:   "there is no route to {host} (no network, or an IPv6 address without IPv6 connectivity)",
		Fix:     "check the network; for an IPv6-only problem, use a host name or IPv4 address",
		match: func(o *Observation) bool {
			return o.Step == StepConnect && (errors.Is(o.Err, syscall.ENETUNREACH) || errors.Is(o.Err, syscall.EHOSTUNREACH))
		},
	},
	{
		ID: "connect-timeout", Step: StepConnect,
		Symptom:   "connecting times out",
		Cause:     "{host} port {port} does not answer: a firewall drops the packets (many networks block outgoing 25, 465 and 587), or the host is wrong",
		Fix:       "check the host and port, and whether this network lets the port out; try the other port of the protocol (465 or 587, 993 or 143)",
		Temporary: true,
		match:     func(o *Observation) bool { return o.Step == StepConnect && isTimeout(o.Err) },
	},
	{
		ID: "connect-failed", Step: StepConnect,
		Symptom: "any other connection failure",
		Cause:   "mailkey could not connect to {host} port {port}",
		Fix:     "check the server in the account (mailkey config check) and the network",
		match:   func(o *Observation) bool { return o.Step == StepConnect && o.Err != nil },
	},

	// ------------------------------------------------------------ tls
	{
		ID: "tls-unknown-authority", Step: StepTLS,
		Symptom: "x509: certificate signed by unknown authority",
		Cause:   "the server's certificate is issued by a certificate authority this machine does not trust: a private (corporate) CA, a self-signed certificate, or a proxy that intercepts TLS",
		Fix:     "if the server uses a private CA, trust it for this account only: set ca_file = \"/path/to/ca.pem\" in [accounts.{account}] (or mailkey add {account} --ca-file /path/to/ca.pem); never switch verification off",
		match: func(o *Observation) bool {
			var ua x509.UnknownAuthorityError
			return errors.As(o.Err, &ua)
		},
	},
	{
		ID: "tls-name-mismatch", Step: StepTLS,
		Symptom: "x509: certificate is valid for OTHER-NAMES, not HOST",
		Cause:   "the certificate does not name {host}, the host the account connects to",
		Fix:     "use a host name the certificate names (shown above) in the account's server URL; if it names none you expect, you may be talking to the wrong server",
		match: func(o *Observation) bool {
			var he x509.HostnameError
			return errors.As(o.Err, &he)
		},
	},
	{
		ID: "tls-expired", Step: StepTLS,
		Symptom: "x509: certificate has expired or is not yet valid",
		Cause:   "the server's certificate has expired, or this machine's clock is wrong",
		Fix:     "check this machine's date and time; if it is right, the server's administrator must renew the certificate",
		match: func(o *Observation) bool {
			var ci x509.CertificateInvalidError
			return errors.As(o.Err, &ci) && ci.Reason == x509.Expired
		},
	},
	{
		ID: "tls-not-tls", Step: StepTLS,
		Symptom: "tls: first record does not look like a TLS handshake",
		Cause:   "the server does not start TLS on this port: it expects STARTTLS (or plain text) there",
		Fix:     "use the STARTTLS scheme for this port (imap://, pop3://, smtp://) or the implicit TLS port (993, 995, 465)",
		match: func(o *Observation) bool {
			var rh tls.RecordHeaderError
			return errors.As(o.Err, &rh)
		},
	},
	{
		ID: "server-refused-connection", Step: StepTLS,
		Symptom: "the server refuses the connection in its greeting (IMAP BYE, POP3 -ERR, SMTP 554 or 421)",
		Cause:   "the server refused the connection before any login: \"{reply}\"",
		Fix:     "try again later; if it lasts, the server may limit or block connections from this address (close other mail clients, or ask its administrator)",
		match:   func(o *Observation) bool { return o.Step == StepTLS && o.Greeting },
	},
	{
		ID: "starttls-refused", Step: StepTLS,
		Symptom: "the server does not offer or refuses STARTTLS",
		Cause:   "the server does not upgrade this connection to TLS; mailkey never sends a token without TLS",
		Fix:     "use the implicit TLS scheme and port (imaps:// 993, pop3s:// 995, smtps:// 465), or ask the administrator to enable STARTTLS",
		match: func(o *Observation) bool {
			return o.Step == StepTLS && (o.Reply != "" || errors.Is(o.Err, errNoSTARTTLS))
		},
	},
	{
		ID: "tls-timeout", Step: StepTLS,
		Symptom: "the greeting or TLS handshake times out",
		Cause:   "the server accepted the connection but did not answer: with implicit TLS on a STARTTLS port (or the reverse) both sides wait for the other",
		Fix:     "check the scheme matches the port: imaps:// 993 or imap:// 143, pop3s:// 995 or pop3:// 110, smtps:// 465 or smtp:// 587",
		match:   func(o *Observation) bool { return o.Step == StepTLS && isTimeout(o.Err) },
	},
	{
		ID: "tls-expires-soon", Step: StepTLS,
		Symptom: "a warning that the server's certificate expires soon",
		Cause:   "the server's certificate expires within two weeks",
		Fix:     "nothing to do yet; if the server's administrator does not renew it in time, logins will fail with a certificate error",
		match:   func(o *Observation) bool { return o.Step == StepTLS && o.CertExpiresSoon },
	},
	{
		ID: "tls-failed", Step: StepTLS,
		Symptom: "any other TLS failure",
		Cause:   "the TLS handshake with {host} failed",
		Fix:     "check the scheme matches the port, and that the server supports TLS 1.2 or later",
		match:   func(o *Observation) bool { return o.Step == StepTLS && o.Err != nil },
	},

	// ------------------------------------------------------------ capabilities
	{
		ID: "no-oauth-mechanism", Step: StepCapabilities,
		Symptom: "the server offers neither XOAUTH2 nor OAUTHBEARER",
		Cause:   "the server does not accept OAuth 2.0 logins here (it offers: {offered})",
		Fix:     "check the host is the provider's OAuth-capable server; for Microsoft 365 the protocol must be enabled for the mailbox (Set-CASMailbox -Identity {email} -ImapEnabled $true / -PopEnabled $true); a self-hosted server needs an OAuth passdb (Dovecot: passdb oauth2)",
		match: func(o *Observation) bool {
			var nm *sasl.NoMechanismError
			return errors.As(o.Err, &nm)
		},
	},
	{
		ID: "capabilities-failed", Step: StepCapabilities,
		Symptom: "the server's capabilities could not be read",
		Cause:   "the server did not answer the capability request",
		Fix:     "run mailkey test {account} --verbose to see the exchange",
		match:   func(o *Observation) bool { return o.Step == StepCapabilities && o.Err != nil },
	},

	// ------------------------------------------------------------ authenticate
	{
		ID: "server-temporary", Step: StepAuthenticate,
		Symptom:   "NO [UNAVAILABLE], -ERR [SYS/TEMP] or 454 4.7.0 Temporary authentication failure",
		Cause:     "the server could not check the token: it could not reach its token service (introspection or directory). This is not a problem with your token",
		Fix:       "try again later; if it lasts, the mail server's administrator should check its connection to the identity provider",
		Temporary: true,
		match:     func(o *Observation) bool { return o.authStep() && o.serverTemporary() },
	},
	{
		ID: "ms-smtp-auth-disabled", Step: StepAuthenticate,
		Symptom: "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled",
		Cause:   "Microsoft 365 has SMTP AUTH switched off for the mailbox or the whole tenant (security defaults switch it off too)",
		Fix:     "in Exchange Online PowerShell: Set-CASMailbox -Identity {email} -SmtpClientAuthenticationDisabled $false; or for the whole tenant: Set-TransportConfig -SmtpClientAuthenticationDisabled $false (with security defaults on, SMTP AUTH stays off)",
		match:   func(o *Observation) bool { return o.authStep() && o.Code == "5.7.139" },
	},
	{
		ID: "ms-5.7.3", Step: StepAuthenticate,
		Symptom: "535 5.7.3 Authentication unsuccessful",
		Cause:   "Exchange Online refused the token for this mailbox: usually a token for another user than {email}, a token without the SMTP.Send scope, or SMTP AUTH disabled for the mailbox",
		Fix:     "check that you signed in as {email} and that the app has the SMTP.Send permission, then: mailkey login {account}; if it persists: Set-CASMailbox -Identity {email} -SmtpClientAuthenticationDisabled $false",
		match:   func(o *Observation) bool { return o.authStep() && o.Code == "5.7.3" && o.Mailbox == "" },
	},
	{
		ID: "token-wrong-user", Step: StepAuthenticate,
		Symptom: "the server refuses a token that was issued to another user",
		Cause:   "the token belongs to {identity}, but the account logs in as {email}",
		Fix:     "log in again and sign in as {email}: mailkey login {account}; or, if {identity} is the mailbox you meant, set email = \"{identity}\" in the account",
		match: func(o *Observation) bool {
			return (o.authStep() || o.Step == StepToken || o.Step == StepCommand) && o.Identity != "" && o.Email != "" && !strings.EqualFold(o.Identity, o.Email)
		},
	},
	{
		ID: "token-missing-scope", Step: StepAuthenticate,
		Symptom: "the server refuses a token without the mail scope",
		Cause:   "the token lacks the scope {scope}, which the server requires for {protocol}",
		Fix:     "add {scope} to the account's scopes (mailkey add {account} --scope … replaces the whole list: repeat --scope for every scope the account needs), or remove scopes from the account to get the preset's; then: mailkey login {account}",
		match: func(o *Observation) bool {
			return (o.authStep() || o.Step == StepToken) && len(o.missingScopes()) > 0
		},
	},
	{
		ID: "token-inactive", Step: StepAuthenticate,
		Symptom: "the server refuses the token and the provider says it is no longer active",
		Cause:   "the access token expired or was revoked before the expiry the provider stated; mailkey refreshed it and the new token works",
		Fix:     "nothing: the new token is stored; mail clients get it from mailkey token",
		match:   func(o *Observation) bool { return o.authStep() && o.Inactive && o.Refreshed },
	},
	{
		ID: "token-stale", Step: StepAuthenticate,
		Symptom: "the server refuses the token, and a refreshed one works",
		Cause:   "the server no longer accepted the stored access token (expired early or revoked); mailkey refreshed it and the new token works",
		Fix:     "nothing: the new token is stored; mail clients get it from mailkey token",
		match:   func(o *Observation) bool { return o.authStep() && o.Refreshed },
	},
	{
		ID: "token-inactive-login", Step: StepAuthenticate,
		Symptom: "the server refuses the token, the provider says it is no longer active, and refreshing does not help",
		Cause:   "the access token expired or was revoked, and no new one could be had",
		Fix:     "mailkey login {account}",
		match:   func(o *Observation) bool { return o.authStep() && o.Inactive },
	},
	{
		ID: "shared-mailbox-no-access", Step: StepAuthenticate,
		Symptom: "the server refuses a delegate's token for a shared mailbox",
		Cause:   "{email} signed in, but the server did not let {email} open the shared mailbox {mailbox}: {email} may lack Full Access to {mailbox}",
		Fix:     "have an Exchange administrator grant it: Add-MailboxPermission -Identity {mailbox} -User {email} -AccessRights FullAccess (allow up to an hour to take effect), then: mailkey test {account}",
		match: func(o *Observation) bool {
			return o.Mailbox != "" && (o.authStep() && o.rejected() || strings.Contains(strings.ToLower(o.Reply), "authenticated but not connected"))
		},
	},
	{
		ID: "token-rejected", Step: StepAuthenticate,
		Symptom: "NO [AUTHENTICATIONFAILED], -ERR [AUTH] or 535 5.7.8 after an error challenge",
		Cause:   "the server refused the token, and the cause cannot be told apart from here: an expired or revoked token, a token for another user and a token without the mail scope all look the same on the wire",
		Fix:     "log in again and sign in as {email}: mailkey login {account}; if it still fails, check the app has the provider's mail scope for {protocol}",
		match:   func(o *Observation) bool { return o.authStep() && o.rejected() },
	},
	{
		ID: "auth-failed", Step: StepAuthenticate,
		Symptom: "any other authentication failure",
		Cause:   "the server did not accept the login",
		Fix:     "run mailkey test {account} --verbose to see the exchange (the token is never shown)",
		match:   func(o *Observation) bool { return o.authStep() },
	},

	// ------------------------------------------------------------ command
	{
		ID: "ms-not-connected", Step: StepCommand,
		Symptom: "User is authenticated but not connected",
		Cause:   "Exchange accepted the token but cannot open the mailbox {email} with it: the token is for another user, or (app-only) the app's service principal has no permission on the mailbox",
		Fix:     "sign in as {email}: mailkey login {account}; for app-only access, in Exchange Online PowerShell: New-ServicePrincipal -AppId CLIENT-ID -ObjectId OBJECT-ID, then Add-MailboxPermission -Identity {email} -User OBJECT-ID -AccessRights FullAccess",
		match: func(o *Observation) bool {
			return strings.Contains(strings.ToLower(o.Reply), "authenticated but not connected")
		},
	},
	{
		ID: "command-temporary", Step: StepCommand,
		Symptom:   "a temporary failure right after logging in",
		Cause:     "the server accepted the login but could not serve the mailbox right now",
		Fix:       "try again later",
		Temporary: true,
		match:     func(o *Observation) bool { return o.Step == StepCommand && o.serverTemporary() },
	},
	{
		ID: "command-failed", Step: StepCommand,
		Symptom: "the login succeeds but the next command fails",
		Cause:   "the server accepted the token but refused to work with the mailbox: a server may accept a token for another user and fail only now",
		Fix:     "check that {email} is the mailbox of the user who signed in, then: mailkey login {account}",
		match:   func(o *Observation) bool { return o.Step == StepCommand && o.Err != nil },
	},

	// ------------------------------------------------------------ send
	{
		ID: "shared-mailbox-send-as", Step: StepSend,
		Symptom: "550 5.7.60 SendAsDenied for a shared mailbox",
		Cause:   "{email} may open the shared mailbox {mailbox} but not send as it",
		Fix:     "have an Exchange administrator grant Send As: Add-RecipientPermission -Identity {mailbox} -Trustee {email} -AccessRights SendAs, then: mailkey test {account} --smtp --send-to {email}",
		match:   func(o *Observation) bool { return o.Step == StepSend && o.Code == "5.7.60" && o.Mailbox != "" },
	},
	{
		ID: "ms-send-as-denied", Step: StepSend,
		Symptom: "550 5.7.60 SendAsDenied",
		Cause:   "the signed-in user may not send as {email}",
		Fix:     "sign in as {email} (mailkey login {account}), or have the administrator grant Send As permission",
		match:   func(o *Observation) bool { return o.Step == StepSend && o.Code == "5.7.60" },
	},
	{
		ID: "send-failed", Step: StepSend,
		Symptom: "the test message is refused",
		Cause:   "the server refused the test message ({code})",
		Fix:     "check the recipient address; the server's reply above says why",
		match:   func(o *Observation) bool { return o.Step == StepSend && o.Err != nil },
	},

	// ------------------------------------------------------------ any step
	{
		ID: "timeout", Step: "any",
		Symptom:   "the server stops answering",
		Cause:     "the server did not answer within the time limit",
		Fix:       "try again; with --timeout you can allow more time",
		Temporary: true,
		match:     func(o *Observation) bool { return isTimeout(o.Err) },
	},
}

// aadsts builds the rule for a Microsoft identity platform error code,
// which the token endpoint puts in its error_description ("AADSTS50020: …").
func aadsts(code, cause, fix string) Rule {
	return Rule{
		ID: "aadsts-" + code, Step: StepToken,
		Symptom: "AADSTS" + code + " from Microsoft's token endpoint",
		Cause:   cause,
		Fix:     fix,
		match:   func(o *Observation) bool { return slices.Contains(o.aadstsCodes(), code) },
	}
}

// aadstsRE is compiled on first use, not at the start of every mailkey command.
var aadstsRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`AADSTS(\d+)`) })

// aadstsCodes returns the AADSTS codes in the token error.
func (o *Observation) aadstsCodes() []string {
	if o.TokenErr == nil {
		return nil
	}
	_, desc := o.oauthError()
	var codes []string
	for _, m := range aadstsRE().FindAllStringSubmatch(desc+" "+o.TokenErr.Error(), -1) {
		codes = append(codes, m[1])
	}
	return codes
}

// oauthError returns the token endpoint's error code and description
// (RFC 6749 §5.2) carried by TokenErr.
func (o *Observation) oauthError() (code, desc string) {
	if o.TokenErr == nil {
		return "", ""
	}
	var nl *tokens.NeedsLoginError
	if errors.As(o.TokenErr, &nl) && nl.Code != "" {
		return nl.Code, nl.Reason
	}
	var ce *tokens.ClientConfigError
	if errors.As(o.TokenErr, &ce) && ce.Code != "" {
		return ce.Code, ce.Reason
	}
	var oe tokens.OAuthErrorer
	if errors.As(o.TokenErr, &oe) {
		return oe.OAuthError()
	}
	var re *oauth2.RetrieveError
	if errors.As(o.TokenErr, &re) {
		return re.ErrorCode, re.ErrorDescription
	}
	if errors.As(o.TokenErr, &nl) {
		return "", nl.Reason
	}
	return "", ""
}

// preset returns the account's provider preset: the zero Preset when its
// name is unknown.
func (o *Observation) preset() provider.Preset {
	p, _ := provider.Lookup(o.Provider)
	return p
}

func (o *Observation) authStep() bool {
	return o.Step == StepAuthenticate || o.Step == StepRetry
}

// serverTemporary reports a temporary failure at the server: IMAP
// [UNAVAILABLE] (RFC 5530), POP3 [SYS/TEMP] (RFC 3206) or an SMTP 4xx
// reply such as 454 4.7.0 (RFC 4954 §6).
func (o *Observation) serverTemporary() bool {
	switch {
	case o.Protocol == provider.IMAP:
		return strings.EqualFold(o.Code, "UNAVAILABLE")
	case o.Protocol == provider.POP3:
		return strings.EqualFold(o.Code, "SYS/TEMP") || strings.EqualFold(o.Code, "IN-USE")
	case o.Protocol == provider.SMTP:
		return o.SMTPCode >= 400 && o.SMTPCode < 500
	}
	return false
}

// rejected reports that the server refused the credentials for good.
func (o *Observation) rejected() bool {
	if o.Failure != nil {
		return true
	}
	switch o.Protocol {
	case provider.IMAP:
		return strings.EqualFold(o.Code, "AUTHENTICATIONFAILED") || (o.Reply != "" && o.Code == "")
	case provider.POP3:
		return o.Reply != "" && (o.Code == "" || strings.EqualFold(o.Code, "AUTH"))
	case provider.SMTP:
		return o.SMTPCode == 535
	}
	return false
}

// missingScopes returns the scopes in Needed that the token is known to
// lack. Unknown token scopes lack nothing.
func (o *Observation) missingScopes() []string {
	if o.Scopes == nil {
		return nil
	}
	var out []string
	for _, need := range o.Needed {
		if !hasScope(o.Scopes, need) {
			out = append(out, need)
		}
	}
	return out
}

// hasScope reports whether have grants need. Microsoft's access tokens
// carry short scope names ("IMAP.AccessAsUser.All") for the URL-form
// scopes that were asked for ("https://outlook.office.com/IMAP.AccessAsUser.All").
func hasScope(have []string, need string) bool {
	short := need
	if i := strings.LastIndexByte(strings.TrimSuffix(need, "/"), '/'); i >= 0 && strings.Contains(need, "://") {
		short = need[i+1:]
	}
	for _, h := range have {
		if strings.EqualFold(h, need) || (short != "" && strings.EqualFold(h, short)) {
			return true
		}
	}
	return false
}

func (o *Observation) code() string {
	switch {
	case o.SMTPCode != 0 && o.Code != "":
		return itoa(o.SMTPCode) + " " + o.Code
	case o.SMTPCode != 0:
		return itoa(o.SMTPCode)
	}
	return o.Code
}

func isTimeout(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errTimedOut) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
