package provider

import (
	"fmt"
	"strings"
)

// Cloud is one instance of Microsoft's cloud: the worldwide one or a
// national cloud, each with its own login host, its own Exchange Online
// resource and its own mail servers. An app registered in one cloud does not
// exist in another, so a cloud is chosen per account (the config key cloud)
// rather than per preset: tenants, flows and Exchange's behaviour are the
// same in each.
type Cloud struct {
	// Name is the value of the config key cloud.
	Name string
	// Authority is the login host's base URL, without the tenant.
	Authority string
	// Resource prefixes the delegated scopes (IMAP.AccessAsUser.All, …);
	// AppOnlyResource prefixes ".default" for app-only tokens.
	Resource, AppOnlyResource string
	// IMAPHost and POP3Host serve implicit TLS on 993 and 995; SMTPHost
	// offers submission with STARTTLS on 587, as Exchange Online does in
	// every cloud.
	IMAPHost, POP3Host, SMTPHost string
}

// Where the values below come from. Each value cites one of these pages by
// its tag. "Not confirmed" marks a value that no Microsoft page at hand
// states: the national clouds' IMAP, POP and SMTP hosts and Exchange
// resources follow the worldwide cloud's pattern with the cloud's Exchange
// Online host name. Microsoft lists those hosts per cloud on [gcch-hosts]
// and [dod-hosts], where they should be checked. An account can override
// every value (imap, pop3, smtp, scopes, auth_url, token_url, device_url).
//
//	[entra-clouds]  https://learn.microsoft.com/entra/identity-platform/authentication-national-cloud
//	[entra-cn]      https://docs.azure.cn/entra/identity-platform/authentication-national-cloud
//	                (the same page for 21Vianet; it gives the token endpoint
//	                https://login.partner.microsoftonline.cn/common/oauth2/v2.0/token)
//	[mail-oauth]    https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
//	[gcch-hosts]    https://learn.microsoft.com/microsoft-365/enterprise/microsoft-365-u-s-government-gcc-high-endpoints
//	[dod-hosts]     https://learn.microsoft.com/microsoft-365/enterprise/microsoft-365-u-s-government-dod-endpoints

// globalCloud is the worldwide cloud (also Microsoft 365 GCC, which signs in
// and serves mail there). smtpHost differs between Microsoft 365 and
// Outlook.com.
func globalCloud(smtpHost string) Cloud {
	return Cloud{
		Name:            "global",
		Authority:       "https://login.microsoftonline.com", // [entra-clouds]
		Resource:        "https://outlook.office.com/",       // [mail-oauth]
		AppOnlyResource: "https://outlook.office365.com/",    // [mail-oauth]
		IMAPHost:        "outlook.office365.com",             // [mail-oauth]
		POP3Host:        "outlook.office365.com",             // [mail-oauth]
		SMTPHost:        smtpHost,                            // [mail-oauth]
	}
}

// nationalClouds are the clouds Microsoft 365 accounts may name besides
// the worldwide one.
var nationalClouds = []Cloud{
	{
		Name:      "gcc-high",
		Authority: "https://login.microsoftonline.us", // [entra-clouds]
		// Exchange Online of GCC High: outlook.office365.us (not
		// confirmed; see [gcch-hosts]).
		Resource:        "https://outlook.office365.us/", // not confirmed
		AppOnlyResource: "https://outlook.office365.us/", // not confirmed
		IMAPHost:        "outlook.office365.us",          // not confirmed
		POP3Host:        "outlook.office365.us",          // not confirmed
		SMTPHost:        "smtp.office365.us",             // not confirmed
	},
	{
		Name:      "dod",
		Authority: "https://login.microsoftonline.us", // [entra-clouds]
		// Exchange Online of DoD: outlook-dod.office365.us, also named
		// webmail.apps.mil (not confirmed; see [dod-hosts]).
		Resource:        "https://outlook-dod.office365.us/", // not confirmed
		AppOnlyResource: "https://outlook-dod.office365.us/", // not confirmed
		IMAPHost:        "outlook-dod.office365.us",          // not confirmed
		POP3Host:        "outlook-dod.office365.us",          // not confirmed
		SMTPHost:        "outlook-dod.office365.us",          // not confirmed
	},
	{
		Name:      "china",
		Authority: "https://login.partner.microsoftonline.cn", // [entra-cn]
		// Exchange Online operated by 21Vianet: partner.outlook.cn
		// (not confirmed).
		Resource:        "https://partner.outlook.cn/", // not confirmed
		AppOnlyResource: "https://partner.outlook.cn/", // not confirmed
		IMAPHost:        "partner.outlook.cn",          // not confirmed
		POP3Host:        "partner.outlook.cn",          // not confirmed
		SMTPHost:        "smtp.partner.outlook.cn",     // not confirmed
	},
}

// apply sets p's endpoints, scopes and servers to the cloud's. The URLs
// keep "{tenant}" for Resolve.
func (c Cloud) apply(p *Preset) {
	authority := c.Authority + "/" + tenantPlaceholder
	p.Cloud = c.Name
	p.Issuer = authority + "/v2.0"
	p.AuthURL = authority + "/oauth2/v2.0/authorize"
	p.TokenURL = authority + "/oauth2/v2.0/token"
	p.DeviceURL = authority + "/oauth2/v2.0/devicecode"
	p.Scopes = map[Protocol][]string{
		IMAP: {c.Resource + "IMAP.AccessAsUser.All"},
		POP3: {c.Resource + "POP.AccessAsUser.All"},
		SMTP: {c.Resource + "SMTP.Send"},
	}
	p.AppOnlyScopes = []string{c.AppOnlyResource + ".default"}
	p.Servers = map[Protocol]string{
		IMAP: "imaps://" + c.IMAPHost + ":993",
		POP3: "pop3s://" + c.POP3Host + ":995",
		SMTP: "smtp://" + c.SMTPHost + ":587",
	}
}

// UnknownCloudError is returned by InCloud for a cloud the preset does not
// know, or for any cloud on a preset that has only one.
type UnknownCloudError struct {
	Cloud, Provider string
	// Valid lists the clouds the provider knows; empty when it has none
	// to choose from.
	Valid []string
}

func (e *UnknownCloudError) Error() string {
	if len(e.Valid) == 0 {
		return fmt.Sprintf("provider %s has no national clouds", e.Provider)
	}
	return fmt.Sprintf("unknown cloud %q for provider %s (valid: %s)", e.Cloud, e.Provider, strings.Join(e.Valid, ", "))
}

// CloudNames lists the clouds p may be used in, the default first; it is
// empty for presets that exist in one cloud only.
func (p Preset) CloudNames() []string {
	var names []string
	for _, c := range p.Clouds {
		names = append(names, c.Name)
	}
	return names
}

// InCloud returns a copy of p with the endpoints, scopes and servers of the
// cloud called name. An empty name means p's own cloud.
func (p Preset) InCloud(name string) (Preset, error) {
	if name == "" {
		return p.clone(), nil
	}
	for _, c := range p.Clouds {
		if c.Name == name {
			r := p.clone()
			c.apply(&r)
			return r, nil
		}
	}
	return Preset{}, &UnknownCloudError{Cloud: name, Provider: p.Name, Valid: p.CloudNames()}
}
