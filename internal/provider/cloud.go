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
	// Name is the value of the config key cloud; Title is for people.
	Name, Title string
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

// Documentation the values below come from. Each value names the page that
// confirms it; "not confirmed" marks one no Microsoft page at hand states
// for IMAP, POP or SMTP, where the cloud's Exchange Online host is used by
// analogy with the worldwide cloud. An account can override every one of
// them (imap, pop3, smtp, scopes, auth_url, token_url, device_url).
const (
	// Authentication endpoints and portals of the national clouds.
	docNationalCloud = "https://learn.microsoft.com/entra/identity-platform/authentication-national-cloud"
	// The same page as published for the cloud operated by 21Vianet; it
	// gives https://login.partner.microsoftonline.cn/common/oauth2/v2.0/token
	// as the token endpoint.
	docNationalCloudCN = "https://docs.azure.cn/entra/identity-platform/authentication-national-cloud"
	// Scopes, IMAP/POP/SMTP hosts of the worldwide cloud.
	docMailOAuth = "https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth"
	// Exchange Online host names of GCC High and DoD.
	docGCCHighEndpoints = "https://learn.microsoft.com/microsoft-365/enterprise/microsoft-365-u-s-government-gcc-high-endpoints"
	docDoDEndpoints     = "https://learn.microsoft.com/microsoft-365/enterprise/microsoft-365-u-s-government-dod-endpoints"
)

// GlobalCloud is the name of the worldwide cloud, the default.
const GlobalCloud = "global"

// globalCloud is the worldwide cloud (also Microsoft 365 GCC, which signs in
// and serves mail there). smtpHost differs between Microsoft 365 and
// Outlook.com.
func globalCloud(smtpHost string) Cloud {
	return Cloud{
		Name: GlobalCloud, Title: "worldwide (including GCC)",
		Authority:       "https://login.microsoftonline.com", // docNationalCloud
		Resource:        "https://outlook.office.com/",       // docMailOAuth
		AppOnlyResource: "https://outlook.office365.com/",    // docMailOAuth
		IMAPHost:        "outlook.office365.com",             // docMailOAuth
		POP3Host:        "outlook.office365.com",             // docMailOAuth
		SMTPHost:        smtpHost,                            // docMailOAuth
	}
}

// nationalClouds are the clouds Microsoft 365 accounts may name besides
// the worldwide one.
var nationalClouds = []Cloud{
	{
		Name: "gcc-high", Title: "Microsoft 365 US Government GCC High",
		Authority: "https://login.microsoftonline.us", // docNationalCloud
		// Exchange Online of GCC High is outlook.office365.us
		// (docGCCHighEndpoints); that it is also the scopes' resource is
		// not confirmed.
		Resource:        "https://outlook.office365.us/",
		AppOnlyResource: "https://outlook.office365.us/",
		IMAPHost:        "outlook.office365.us", // docGCCHighEndpoints; IMAP/POP use not confirmed
		POP3Host:        "outlook.office365.us", // docGCCHighEndpoints; IMAP/POP use not confirmed
		SMTPHost:        "smtp.office365.us",    // not confirmed
	},
	{
		Name: "dod", Title: "Microsoft 365 US Government DoD",
		Authority: "https://login.microsoftonline.us", // docNationalCloud
		// Exchange Online of DoD is outlook-dod.office365.us, also
		// reached as webmail.apps.mil (docDoDEndpoints); that it is the
		// scopes' resource is not confirmed.
		Resource:        "https://outlook-dod.office365.us/",
		AppOnlyResource: "https://outlook-dod.office365.us/",
		IMAPHost:        "outlook-dod.office365.us", // docDoDEndpoints; IMAP/POP use not confirmed
		POP3Host:        "outlook-dod.office365.us", // docDoDEndpoints; IMAP/POP use not confirmed
		SMTPHost:        "outlook-dod.office365.us", // not confirmed
	},
	{
		Name: "china", Title: "Microsoft 365 operated by 21Vianet (China)",
		Authority: "https://login.partner.microsoftonline.cn", // docNationalCloudCN
		// Exchange Online operated by 21Vianet is partner.outlook.cn; no
		// page at hand confirms it as the scopes' resource or mail host.
		Resource:        "https://partner.outlook.cn/",
		AppOnlyResource: "https://partner.outlook.cn/",
		IMAPHost:        "partner.outlook.cn",      // not confirmed
		POP3Host:        "partner.outlook.cn",      // not confirmed
		SMTPHost:        "smtp.partner.outlook.cn", // not confirmed
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
