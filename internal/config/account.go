package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailkey/mailkey/internal/provider"
)

// buildAccount turns a section into an Account, recording every problem.
func (b *builder) buildAccount(s *section) *Account {
	a := &Account{Name: s.prefix[1], File: b.file, Line: s.at.line}
	errAt := func(key, msg, hint string) { b.add(s.pos(key), s.field(key), msg, hint) }
	// set: the key is present; good: present with the right type.
	set := func(key string) bool { return s.vals[key] != nil }
	good := func(key string) bool { return s.vals[key] != nil && !s.vals[key].bad }

	a.Provider = b.str(s, "provider")
	a.Email = b.str(s, "email")
	a.Mailbox = b.str(s, "mailbox")
	a.ClientID = b.str(s, "client_id")
	a.ClientSecret = b.str(s, "client_secret")
	a.ClientSecretCmd = b.str(s, "client_secret_cmd")
	a.Tenant = b.str(s, "tenant")
	a.Cloud = b.str(s, "cloud")
	a.Issuer = b.str(s, "issuer")
	a.AuthURL = b.str(s, "auth_url")
	a.TokenURL = b.str(s, "token_url")
	a.DeviceURL = b.str(s, "device_url")
	a.RevokeURL = b.str(s, "revoke_url")
	a.IntrospectURL = b.str(s, "introspect_url")
	a.IMAP = b.str(s, "imap")
	a.POP3 = b.str(s, "pop3")
	a.SMTP = b.str(s, "smtp")
	a.Flow = b.str(s, "flow")
	a.SASL = b.str(s, "sasl")
	a.CAFile = b.path(s, "ca_file")
	a.CertificateFile = b.path(s, "certificate_file")
	a.PrivateKeyFile = b.path(s, "private_key_file")
	a.ServiceAccountFile = b.path(s, "service_account_file")

	// Provider.
	var preset provider.Preset
	havePreset := false
	switch {
	case !set("provider"):
		errAt("provider", "missing provider", "add provider = \"…\" (one of "+strings.Join(provider.Names(), ", ")+")")
	case good("provider"):
		p, err := provider.Lookup(a.Provider)
		if err != nil {
			hint := "valid providers: " + strings.Join(provider.Names(), ", ")
			if sg := suggest(a.Provider, provider.Names()); sg != "" {
				hint = "did you mean " + sg + "? " + hint
			}
			errAt("provider", fmt.Sprintf("unknown provider %q", a.Provider), hint)
		} else {
			preset, havePreset = p, true
		}
	}
	if havePreset && good("cloud") {
		p, err := preset.InCloud(a.Cloud)
		var ce *provider.UnknownCloudError
		switch {
		case errors.As(err, &ce) && len(ce.Valid) == 0:
			errAt("cloud", err.Error(), "remove cloud; only microsoft is offered in national clouds")
		case errors.As(err, &ce):
			hint := "write one of " + strings.Join(ce.Valid, ", ")
			if sg := suggest(a.Cloud, ce.Valid); sg != "" {
				hint = "did you mean " + sg + "? " + hint
			}
			errAt("cloud", fmt.Sprintf("unknown cloud %q", a.Cloud), hint)
		default:
			preset = p
		}
	}
	generic := havePreset && preset.Name == provider.Generic

	// Identity.
	switch {
	case !set("email"):
		errAt("email", "missing email", `add email = "you@example.com": the mailbox's address, used as the login name`)
	case good("email") && !validEmail(a.Email):
		errAt("email", fmt.Sprintf("%q is not an email address", a.Email), "write the full address, such as you@example.com")
	}

	switch {
	case set("mailbox") && good("mailbox") && !validEmail(a.Mailbox):
		errAt("mailbox", fmt.Sprintf("%q is not an email address", a.Mailbox), "write the shared mailbox's full address, such as shared@contoso.com")
	case a.Mailbox != "" && strings.EqualFold(a.Mailbox, a.Email):
		errAt("mailbox", "mailbox is the same address as email", "remove mailbox: an account opens its own mailbox without it")
	}

	// Flow.
	switch a.Flow {
	case FlowInteractive, FlowClientCredentials, FlowServiceAccount:
	default:
		errAt("flow", fmt.Sprintf("unknown flow %q", a.Flow), `leave flow out for a person's login, or write "client_credentials" (app-only) or "service_account" (Google)`)
	}
	if a.ClientID == "" && a.Flow != FlowServiceAccount && (!set("client_id") || good("client_id")) {
		msg := "missing client_id"
		if set("client_id") {
			msg = "client_id is empty"
		}
		errAt("client_id", msg, "add client_id = \"…\": the ID of the OAuth client registered with the provider")
	}
	if set("client_secret") && set("client_secret_cmd") {
		errAt("client_secret_cmd", "client_secret and client_secret_cmd are both set", "keep one of them")
	}
	if v := b.str(s, "client_secret_expires"); v != "" {
		t, err := time.ParseInLocation(time.DateOnly, v, time.Local)
		switch {
		case err != nil:
			errAt("client_secret_expires", fmt.Sprintf("%q is not a date", v), fString.hint("client_secret_expires"))
		case a.ClientSecret == "" && a.ClientSecretCmd == "":
			errAt("client_secret_expires", "client_secret_expires is set but there is no client secret", "remove client_secret_expires, or set client_secret or client_secret_cmd")
		default:
			a.ClientSecretExpires = t
		}
	} else if set("client_secret_expires") && good("client_secret_expires") {
		errAt("client_secret_expires", "client_secret_expires is empty", fString.hint("client_secret_expires"))
	}

	// Tenant.
	if a.Tenant != "" && havePreset {
		switch {
		case !preset.Tenanted:
			errAt("tenant", fmt.Sprintf("provider %s takes no tenant", preset.Name), "remove tenant; only microsoft and outlook use it")
		case !provider.ValidTenant(a.Tenant):
			errAt("tenant", fmt.Sprintf("invalid tenant %q", a.Tenant), "write common, organizations, consumers, the directory GUID or a domain such as contoso.onmicrosoft.com")
		}
	}

	// Endpoints.
	for _, e := range []struct{ key, v string }{
		{"issuer", a.Issuer}, {"auth_url", a.AuthURL}, {"token_url", a.TokenURL},
		{"device_url", a.DeviceURL}, {"revoke_url", a.RevokeURL}, {"introspect_url", a.IntrospectURL},
	} {
		key, v := e.key, e.v
		if !good(key) {
			continue
		}
		if err := provider.CheckEndpoint(v); err != nil {
			errAt(key, err.Error(), "use https://, or http:// only on 127.0.0.1, ::1 or localhost")
		}
	}

	// Scopes.
	if scopes, ok := b.list(s, "scopes"); ok {
		switch {
		case len(scopes) == 0:
			errAt("scopes", "scopes is empty", "leave scopes out to use the provider's, or list them")
		case slices.ContainsFunc(scopes, func(sc string) bool { return sc == "" || strings.ContainsAny(sc, " \t\r\n") }):
			errAt("scopes", "a scope is empty or contains spaces", `write one scope per element: ["a", "b"]`)
		default:
			a.Scopes = scopes
		}
	}

	// Servers and protocols.
	a.Servers = map[provider.Protocol]provider.Server{}
	if havePreset {
		for proto, u := range preset.Servers {
			if srv, err := provider.ParseServer(proto, u); err == nil {
				a.Servers[proto] = srv
			}
		}
	}
	var explicit []provider.Protocol
	for _, sv := range []struct {
		proto provider.Protocol
		v     string
	}{{provider.IMAP, a.IMAP}, {provider.POP3, a.POP3}, {provider.SMTP, a.SMTP}} {
		key := string(sv.proto)
		if !good(key) {
			continue
		}
		srv, err := provider.ParseServer(sv.proto, sv.v)
		if err != nil {
			var se *provider.ServerError
			hint := ""
			if errors.As(err, &se) {
				hint = se.Hint()
			}
			errAt(key, err.Error(), hint)
			continue
		}
		a.Servers[sv.proto] = srv
		explicit = append(explicit, sv.proto)
	}
	if protos, ok := b.list(s, "protocols"); ok {
		a.protocols = protos
		if len(protos) == 0 {
			errAt("protocols", "protocols is empty", `list what the account is used for: ["imap", "smtp"]`)
		}
		for _, p := range protos {
			proto, err := provider.ParseProtocol(p)
			if err != nil {
				errAt("protocols", fmt.Sprintf("unknown protocol %q", p), `use "imap", "pop3" and "smtp"`)
				continue
			}
			if !slices.Contains(a.Protocols, proto) {
				a.Protocols = append(a.Protocols, proto)
			}
			if _, ok := a.Servers[proto]; !ok && havePreset {
				errAt("protocols", fmt.Sprintf("%s is listed but the account has no %s server", proto, proto), fmt.Sprintf("add %s = \"HOST:PORT\"", proto))
			}
		}
	} else if len(explicit) > 0 {
		a.Protocols = sortProtocols(explicit)
	} else {
		for _, proto := range provider.Protocols {
			if _, ok := a.Servers[proto]; ok {
				a.Protocols = append(a.Protocols, proto)
			}
		}
	}

	// Files.
	if a.CAFile != "" {
		b.checkPEM(s, "ca_file", a.CAFile, "CERTIFICATE")
	}
	if a.CertificateFile != "" {
		b.checkPEM(s, "certificate_file", a.CertificateFile, "CERTIFICATE")
	}
	if a.PrivateKeyFile != "" {
		b.checkReadable(s, "private_key_file", a.PrivateKeyFile)
	}
	if a.ServiceAccountFile != "" {
		b.checkReadable(s, "service_account_file", a.ServiceAccountFile)
	}
	if set("certificate_file") != set("private_key_file") {
		missing := "private_key_file"
		if !set("certificate_file") {
			missing = "certificate_file"
		}
		errAt(missing, "missing: certificate_file and private_key_file go together", "set both for a client assertion (RFC 7523), or neither")
	}

	// SASL.
	switch strings.ToLower(a.SASL) {
	case "":
	case provider.SASLXOAuth2:
		a.SASL = provider.SASLXOAuth2
	case provider.SASLOAuthBearer:
		a.SASL = provider.SASLOAuthBearer
		if havePreset && !preset.OAuthBearer {
			errAt("sasl", fmt.Sprintf("%s servers do not offer OAUTHBEARER", preset.Name), `write sasl = "xoauth2", or leave it out`)
		}
	default:
		errAt("sasl", fmt.Sprintf("unknown SASL mechanism %q", a.SASL), `write "xoauth2" or "oauthbearer"`)
	}

	if havePreset {
		b.checkFlow(s, a, preset, generic)
	}
	return a
}

// checkFlow checks what the account's flow needs from the provider and
// the account.
func (b *builder) checkFlow(s *section, a *Account, p provider.Preset, generic bool) {
	errAt := func(key, msg, hint string) { b.add(s.pos(key), s.field(key), msg, hint) }
	switch a.Flow {
	case FlowInteractive:
		if generic && a.Issuer == "" {
			if a.AuthURL == "" && a.DeviceURL == "" {
				errAt("issuer", "generic provider needs issuer, or auth_url (or device_url) and token_url", `add issuer = "https://…" for discovery`)
			} else if a.TokenURL == "" {
				errAt("token_url", "missing token_url", `add token_url = "https://…", or use issuer for discovery`)
			}
		}
	case FlowClientCredentials:
		switch {
		case p.NoClientCredentials:
			hint := "use the interactive flow"
			if p.ServiceAccounts {
				hint = `use flow = "service_account" with service_account_file`
			}
			errAt("flow", p.Name+" has no client credentials grant for mail", hint)
		case generic && a.Issuer == "" && a.TokenURL == "":
			errAt("token_url", "missing token_url", `add token_url = "https://…", or issuer for discovery`)
		}
		if p.MultiTenant(a.Tenant) {
			t := strings.ToLower(a.Tenant)
			key := "tenant"
			if a.Tenant == "" {
				t, key = p.DefaultTenant, "flow"
			}
			errAt(key, fmt.Sprintf("app-only tokens need a specific tenant, not %s", t), `set tenant = "contoso.onmicrosoft.com" or the directory GUID`)
		}
		if a.ClientSecret == "" && a.ClientSecretCmd == "" && (a.CertificateFile == "" || a.PrivateKeyFile == "") &&
			s.vals["certificate_file"] == nil {
			errAt("flow", "client_credentials needs a client secret or a certificate", "set client_secret, client_secret_cmd, or certificate_file and private_key_file")
		}
	case FlowServiceAccount:
		if !p.ServiceAccounts {
			errAt("flow", fmt.Sprintf("service accounts are for google (or a generic provider with the JWT bearer grant), not %s", p.Name), `use flow = "client_credentials"`)
		}
		if s.vals["service_account_file"] == nil {
			errAt("service_account_file", "missing service_account_file", `add service_account_file = "/path/key.json": the service account's JSON key`)
		}
	}
}

func sortProtocols(ps []provider.Protocol) []provider.Protocol {
	var out []provider.Protocol
	for _, p := range provider.Protocols {
		if slices.Contains(ps, p) {
			out = append(out, p)
		}
	}
	return out
}

// validEmail accepts LOCAL@DOMAIN with both parts present and no spaces or
// control characters; the provider decides the rest.
func validEmail(s string) bool {
	i := strings.LastIndexByte(s, '@')
	if i <= 0 || i == len(s)-1 {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return !strings.ContainsAny(s[i+1:], "@[]()<>,;:\\\"")
}
