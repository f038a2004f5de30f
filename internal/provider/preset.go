package provider

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Protocol is a mail access protocol mailkey obtains tokens for.
type Protocol string

// The protocols, in the order mailkey lists them.
const (
	IMAP Protocol = "imap"
	POP3 Protocol = "pop3"
	SMTP Protocol = "smtp"
)

// Protocols lists every Protocol in canonical order.
var Protocols = []Protocol{IMAP, POP3, SMTP}

// ParseProtocol returns the Protocol named s ("imap", "pop3" or "smtp").
func ParseProtocol(s string) (Protocol, error) {
	for _, p := range Protocols {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown protocol %q (valid: imap, pop3, smtp)", s)
}

// SASL mechanism names as they appear in configuration.
const (
	SASLXOAuth2     = "xoauth2"
	SASLOAuthBearer = "oauthbearer"
)

// tenantPlaceholder is replaced by Resolve in the URLs of tenanted presets.
const tenantPlaceholder = "{tenant}"

// Preset describes one provider. It is plain data: Lookup returns a copy
// that the caller may change freely.
type Preset struct {
	// Name is the value of the config key provider; Title is for people.
	Name, Title string

	// Issuer is the authorization server's issuer identifier (RFC 8414,
	// RFC 9207), when the provider has a stable one.
	Issuer string
	// Endpoints. Empty means the provider has no such endpoint. Tenanted
	// presets contain "{tenant}" until Resolve substitutes it.
	AuthURL, TokenURL, DeviceURL, RevokeURL string

	// Cloud names the Microsoft cloud the endpoints, scopes and servers
	// belong to (see Cloud); Clouds lists those the preset may be used in
	// instead, the default first (see InCloud). Empty elsewhere.
	Cloud  string
	Clouds []Cloud

	// Tenanted presets (Microsoft) take a tenant in their URLs;
	// DefaultTenant is used when the account does not name one. See
	// MultiTenant for the tenants that stand for many directories.
	Tenanted      bool
	DefaultTenant string

	// Scopes holds the least-privilege scopes per protocol. BaseScopes are
	// requested in every interactive flow (offline_access for Microsoft).
	// AppOnlyScopes are requested by the client credentials grant.
	Scopes        map[Protocol][]string
	BaseScopes    []string
	AppOnlyScopes []string

	// IdentityScopes are the OpenID Connect scopes (Core §5.4) the
	// provider accepts next to the mail scopes in one request; with them
	// it returns an ID token that names who signed in, and login compares
	// that address with the account's. Interactive flows request them
	// after BaseScopes.
	IdentityScopes []string
	// IdentityByMailLogin: the provider's mail grants name nobody, so
	// login proves who signed in by logging in to the account's mail
	// server as its address with the new token before storing it.
	IdentityByMailLogin bool
	// IdentityTenant, when set, is the tenant ID (the tid claim) every ID
	// token must carry: Outlook.com signs in personal accounts only, whose
	// tenant is ConsumerTenantID.
	IdentityTenant string

	// Servers holds a mail server URL per protocol, as ParseServer reads it.
	Servers map[Protocol]string

	// PreferSASL is the mechanism mailkey uses by default (SASLXOAuth2 or
	// SASLOAuthBearer); OAuthBearer says whether the servers offer
	// OAUTHBEARER (RFC 7628) at all. XOAUTH2 is offered by every preset.
	PreferSASL  string
	OAuthBearer bool

	// DeviceFlow says whether the device authorization grant (RFC 8628)
	// works for mail scopes; when it does not, DeviceRefusal says why and
	// what to use instead.
	DeviceFlow    bool
	DeviceRefusal string

	// DeviceRejectsScopes: the provider's device flow answers
	// invalid_scope for the mail scopes (Google), so that error means "use
	// another flow", not "the scopes are wrong".
	DeviceRejectsScopes bool

	// NoClientCredentials: the provider has no client credentials grant
	// for mail. ServiceAccounts: it offers the JWT bearer grant for
	// service accounts (RFC 7523, Google's domain-wide delegation).
	NoClientCredentials bool
	ServiceAccounts     bool
	// AppOnlyCheck says what to check at the provider when it refuses an
	// app-only token; "{email}" stands for the mailbox. Empty: nothing
	// more specific than the client's credentials is known.
	AppOnlyCheck string

	// AuthParams are extra parameters for the authorization request.
	AuthParams map[string]string
	// RequirePKCE: the provider rejects requests without PKCE. mailkey
	// always sends S256 anyway; this only documents the provider.
	RequirePKCE bool
	// RefreshNeedsScope: a refresh request must carry a scope parameter
	// (the Microsoft identity platform v2); elsewhere it may be left out,
	// which means "the scopes granted" (RFC 6749 section 6).
	RefreshNeedsScope bool
	// RefreshLimit explains why the provider gives a refresh token a
	// deadline (refresh_token_expires_in) and how to lift it, when that is
	// known: Google's apps in "Testing" status get 7 days.
	RefreshLimit string
	// IdleLimit is how long a refresh token lives unused: each refresh
	// renews it, and one left unused that long is dead. IdleLimitSource
	// names the provider's statement of it. Zero: no such limit is known.
	IdleLimit       time.Duration
	IdleLimitSource string

	// RevokeHelp says how to end a grant where the provider has no
	// revocation endpoint (RFC 7009), when there is another way.
	RevokeHelp string

	// Notes are facts a person setting the provider up should know.
	Notes []string
}

// day is a calendar day, for provider limits given in days.
const day = 24 * time.Hour

// microsoft returns the shared data of the microsoft and outlook presets,
// in cloud c; clouds are the others the preset may be used in.
func microsoft(name, title, tenant string, c Cloud, clouds []Cloud, appOnlyCheck string) Preset {
	p := Preset{
		Name:          name,
		Title:         title,
		Tenanted:      true,
		DefaultTenant: tenant,
		BaseScopes:    []string{"offline_access"},
		// The OpenID Connect scopes may accompany the scopes of one
		// resource (here Exchange Online's) in a request [ms-scopes].
		IdentityScopes:    []string{"openid", "email", "profile"},
		PreferSASL:        SASLXOAuth2,
		OAuthBearer:       false,
		DeviceFlow:        true,
		AppOnlyCheck:      appOnlyCheck,
		RefreshNeedsScope: true,
		// "The default lifetime for the refresh tokens is 24 hours for
		// single page apps and 90 days for all other scenarios. Refresh
		// tokens replace themselves with a fresh token upon every use."
		// A dead one is refused with AADSTS700082 ("expired due to
		// inactivity ... inactive for 90.00:00:00").
		IdleLimit:       90 * day,
		IdleLimitSource: "https://learn.microsoft.com/entra/identity-platform/refresh-tokens#token-lifetime",
		RevokeHelp:      "to revoke them, remove the app at https://myapps.microsoft.com (or an admin runs Revoke-MgUserSignInSession)",
		Notes: []string{
			"Exchange Online offers XOAUTH2 only, never OAUTHBEARER",
			"refresh against the tenant you authorised with; refresh tokens rotate on every use",
			"SMTP submission is STARTTLS on port 587; there is no port 465",
			"SMTP AUTH must be enabled for the tenant and the mailbox, else the server answers 535 5.7.139",
			"for tokens without a user (flow = \"client_credentials\") name a tenant GUID or domain and grant the app IMAP/POP/SMTP access in Exchange",
		},
	}
	if len(clouds) > 0 {
		p.Clouds = append([]Cloud{c}, clouds...)
	}
	c.apply(&p)
	return p
}

// outlook returns the Outlook.com preset: the microsoft preset's data,
// for personal Microsoft accounts only.
func outlook() Preset {
	p := microsoft("outlook", "Outlook.com (personal Microsoft accounts)", "consumers", globalCloud("smtp-mail.outlook.com"), nil, "")
	p.IdentityTenant = ConsumerTenantID
	return p
}

// yahooFamily returns the shared data of the yahoo and aol presets.
func yahooFamily(name, title, domain, mailDomain string) Preset {
	return Preset{
		Name:     name,
		Title:    title,
		AuthURL:  "https://api.login." + domain + "/oauth2/request_auth",
		TokenURL: "https://api.login." + domain + "/oauth2/get_token",
		Scopes: map[Protocol][]string{
			IMAP: {"mail-w"},
			POP3: {"mail-w"},
			SMTP: {"mail-w"},
		},
		Servers: map[Protocol]string{
			IMAP: "imaps://imap." + mailDomain + ":993",
			POP3: "pop3s://pop." + mailDomain + ":995",
			SMTP: "smtps://smtp." + mailDomain + ":465",
		},
		PreferSASL:    SASLXOAuth2,
		OAuthBearer:   true,
		DeviceRefusal: title + " has no device authorization endpoint; use the browser (loopback) or --paste flow",
		// Yahoo's OpenID Connect sign-in takes its permissions from the
		// app's registration and documents no request mixing openid
		// with mail-w [yahoo-oidc]: the mail login tells who signed in.
		IdentityByMailLogin: true,
		Notes: []string{
			"the mail-w scope must be granted to the app in the " + title + " developer console",
		},
	}
}

// presets holds every preset in the order Names lists them.
var presets = []Preset{
	{
		Name:      "google",
		Title:     "Google (Gmail, Google Workspace)",
		Issuer:    "https://accounts.google.com",
		AuthURL:   "https://accounts.google.com/o/oauth2/v2/auth",
		TokenURL:  "https://oauth2.googleapis.com/token",
		RevokeURL: "https://oauth2.googleapis.com/revoke",
		// Google accepts the OpenID Connect scopes next to the Gmail scope
		// and signs the ID token with its published keys [google-oidc].
		IdentityScopes: []string{"openid", "email"},
		Scopes: map[Protocol][]string{
			IMAP: {"https://mail.google.com/"},
			POP3: {"https://mail.google.com/"},
			SMTP: {"https://mail.google.com/"},
		},
		Servers: map[Protocol]string{
			IMAP: "imaps://imap.gmail.com:993",
			POP3: "pop3s://pop.gmail.com:995",
			SMTP: "smtps://smtp.gmail.com:465",
		},
		PreferSASL:          SASLXOAuth2,
		OAuthBearer:         true,
		DeviceFlow:          false,
		DeviceRefusal:       "Google's device flow rejects the Gmail scope (invalid_scope); use the browser (loopback) flow or --paste",
		DeviceRejectsScopes: true,
		NoClientCredentials: true,
		ServiceAccounts:     true,
		// "A token might stop working for one of these reasons: ... The
		// token has not been used for six months."
		IdleLimit:       182 * day,
		IdleLimitSource: "https://developers.google.com/identity/protocols/oauth2#expiration",
		RefreshLimit: `Google limits refresh tokens of apps in "Testing" status to 7 days; ` +
			`set the OAuth consent screen's publishing status to "In production" for lasting tokens`,
		AuthParams: map[string]string{
			"access_type": "offline",
			"prompt":      "consent",
		},
		Notes: []string{
			"create an OAuth client of type \"Desktop app\"; the out-of-band (oob) redirect is blocked since 2022",
			"apps whose publishing status is \"Testing\" get refresh tokens that expire after 7 days",
			"Workspace service accounts need domain-wide delegation for https://mail.google.com/",
			"smtp://smtp.gmail.com:587 (STARTTLS) works as well as smtps://smtp.gmail.com:465",
		},
	},
	microsoft("microsoft", "Microsoft 365 (Exchange Online)", "common", globalCloud("smtp.office365.com"), nationalClouds,
		"check the app's client secret or certificate, its Office 365 Exchange Online application permissions (IMAP.AccessAsApp, POP.AccessAsApp, SMTP.SendAsApp) with admin consent, and the Exchange service principal's access to {email} (docs/providers/microsoft.md)"),
	outlook(),
	yahooFamily("yahoo", "Yahoo Mail", "yahoo.com", "mail.yahoo.com"),
	yahooFamily("aol", "AOL Mail", "aol.com", "aol.com"),
	{
		Name:     "fastmail",
		Title:    "Fastmail",
		Issuer:   "https://api.fastmail.com",
		AuthURL:  "https://api.fastmail.com/oauth/authorize",
		TokenURL: "https://api.fastmail.com/oauth/refresh",
		Scopes: map[Protocol][]string{
			IMAP: {"https://www.fastmail.com/dev/protocol-imap"},
			POP3: {"https://www.fastmail.com/dev/protocol-pop"},
			SMTP: {"https://www.fastmail.com/dev/protocol-smtp"},
		},
		Servers: map[Protocol]string{
			IMAP: "imaps://imap.fastmail.com:993",
			POP3: "pop3s://pop.fastmail.com:995",
			SMTP: "smtps://smtp.fastmail.com:465",
		},
		PreferSASL:    SASLXOAuth2,
		OAuthBearer:   true,
		DeviceRefusal: "Fastmail has no device authorization endpoint; use the browser (loopback) or --paste flow",
		RequirePKCE:   true,
		// Fastmail's OAuth is the authorization code grant of RFC 6749
		// and nothing of OpenID Connect [fastmail-oauth].
		IdentityByMailLogin: true,
		Notes: []string{
			"OAuth clients are registered by Fastmail on request",
		},
	},
	{
		Name:       "generic",
		Title:      "any OAuth 2.0 provider (endpoints from issuer discovery or set by hand)",
		PreferSASL: SASLXOAuth2,
		// Whether a generic server offers OAUTHBEARER is unknown; the
		// account's sasl setting decides.
		OAuthBearer: true,
		DeviceFlow:  true,
		// A generic provider may offer the JWT bearer grant (RFC 7523
		// section 2.1) with a key file of Google's shape.
		ServiceAccounts: true,
		Notes: []string{
			"set issuer for discovery, or auth_url and token_url (device_url, revoke_url optional)",
			"set scopes and the imap, pop3 and smtp server URLs",
		},
	},
}

// Generic is the name of the preset without built-in endpoints.
const Generic = "generic"

// UnknownProviderError is returned by Lookup for a name without a preset.
type UnknownProviderError struct {
	Name string
}

func (e *UnknownProviderError) Error() string {
	return fmt.Sprintf("unknown provider %q (valid: %s)", e.Name, strings.Join(Names(), ", "))
}

// Names lists the preset names: google, microsoft, outlook, yahoo, aol,
// fastmail, generic.
func Names() []string {
	names := make([]string, len(presets))
	for i, p := range presets {
		names[i] = p.Name
	}
	return names
}

// Lookup returns a copy of the preset called name, or an
// *UnknownProviderError.
func Lookup(name string) (Preset, error) {
	for _, p := range presets {
		if p.Name == name {
			return p.clone(), nil
		}
	}
	return Preset{}, &UnknownProviderError{Name: name}
}

// ForTokenURL returns a copy of the preset whose token endpoint is on the
// host of tokenURL: a stored record knows where its tokens come from, not
// which preset its account used.
func ForTokenURL(tokenURL string) (Preset, bool) {
	u, err := url.Parse(tokenURL)
	if err != nil || u.Hostname() == "" {
		return Preset{}, false
	}
	for _, p := range presets {
		if pu, err := url.Parse(p.TokenURL); err == nil && pu.Hostname() == u.Hostname() {
			return p.clone(), true
		}
	}
	return Preset{}, false
}

// clone returns a deep copy, so that callers cannot change the registry.
func (p Preset) clone() Preset {
	if p.Scopes != nil {
		s := make(map[Protocol][]string, len(p.Scopes))
		for k, v := range p.Scopes {
			s[k] = slices.Clone(v)
		}
		p.Scopes = s
	}
	p.BaseScopes = slices.Clone(p.BaseScopes)
	p.IdentityScopes = slices.Clone(p.IdentityScopes)
	p.AppOnlyScopes = slices.Clone(p.AppOnlyScopes)
	p.Notes = slices.Clone(p.Notes)
	p.Clouds = slices.Clone(p.Clouds)
	if p.Servers != nil {
		s := make(map[Protocol]string, len(p.Servers))
		for k, v := range p.Servers {
			s[k] = v
		}
		p.Servers = s
	}
	if p.AuthParams != nil {
		a := make(map[string]string, len(p.AuthParams))
		for k, v := range p.AuthParams {
			a[k] = v
		}
		p.AuthParams = a
	}
	return p
}

// InvalidTenantError is returned by Resolve for a tenant ValidTenant refuses,
// or for any tenant on a preset that takes none.
type InvalidTenantError struct {
	Tenant   string
	Provider string
	// NotTenanted is set when the provider takes no tenant at all.
	NotTenanted bool
}

func (e *InvalidTenantError) Error() string {
	if e.NotTenanted {
		return fmt.Sprintf("provider %s takes no tenant", e.Provider)
	}
	return fmt.Sprintf("invalid tenant %q (valid: %s, a directory GUID or a domain such as contoso.onmicrosoft.com)", e.Tenant, strings.Join(multiTenants, ", "))
}

// Resolve returns a copy of p with "{tenant}" replaced in every URL. An
// empty tenant means p.DefaultTenant. Presets that are not Tenanted accept
// only the empty tenant.
func (p Preset) Resolve(tenant string) (Preset, error) {
	if !p.Tenanted {
		if tenant != "" {
			return Preset{}, &InvalidTenantError{Tenant: tenant, Provider: p.Name, NotTenanted: true}
		}
		return p.clone(), nil
	}
	if tenant == "" {
		tenant = p.DefaultTenant
	}
	if !ValidTenant(tenant) {
		return Preset{}, &InvalidTenantError{Tenant: tenant, Provider: p.Name}
	}
	r := p.clone()
	sub := func(s string) string { return strings.ReplaceAll(s, tenantPlaceholder, tenant) }
	r.Issuer = sub(r.Issuer)
	r.AuthURL = sub(r.AuthURL)
	r.TokenURL = sub(r.TokenURL)
	r.DeviceURL = sub(r.DeviceURL)
	r.RevokeURL = sub(r.RevokeURL)
	r.DefaultTenant = tenant
	return r, nil
}

// ScopesFor returns the scopes an interactive flow asks for to use the given
// protocols: BaseScopes first, then IdentityScopes, then each protocol's
// scopes in the order the protocols are given, without duplicates. With no protocols it covers every
// protocol the preset has scopes for, in canonical order.
func (p Preset) ScopesFor(protos ...Protocol) []string {
	if len(protos) == 0 {
		protos = Protocols
	}
	var out []string
	add := func(ss []string) {
		for _, s := range ss {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	add(p.BaseScopes)
	add(p.IdentityScopes)
	for _, proto := range protos {
		add(p.Scopes[proto])
	}
	return out
}
