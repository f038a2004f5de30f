package cli

import (
	"bufio"
	"errors"
	"io"
	"path/filepath"
	"strings"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/provider"
)

type addCmd struct {
	Account string `arg:"" help:"Name of the account (letters, digits, '.', '_', '-', '@')."`

	accountFlags `embed:""`
}

// accountFlags are the settings of an account as flags: mailkey add takes
// them, and mailkey import takes them to fill in or change what it maps.
type accountFlags struct {
	Provider     string   `help:"Provider preset: google, microsoft, outlook, yahoo, aol, fastmail or generic." placeholder:"P"`
	Email        string   `help:"The address that signs in (and the mailbox, unless --mailbox names another)." placeholder:"ADDR"`
	Mailbox      string   `help:"A shared or delegated mailbox to open with the signed-in user's token." placeholder:"ADDR"`
	ClientID     string   `name:"client-id" help:"OAuth client ID of your app registration." placeholder:"ID"`
	ClientSecret string   `name:"client-secret" help:"OAuth client secret, if the app has one ('-' reads it from standard input)." placeholder:"SECRET"`
	SecretCmd    string   `name:"client-secret-cmd" help:"Command printing the client secret (e.g. 'pass show mail/app')." placeholder:"CMD"`
	Tenant       string   `help:"Microsoft tenant: common, organizations, consumers, a GUID or a domain." placeholder:"T"`
	Cloud        string   `help:"Microsoft cloud: global (default), gcc-high, dod or china." placeholder:"C"`
	Issuer       string   `help:"Issuer URL for OpenID discovery (generic provider)." placeholder:"URL"`
	AuthURL      string   `name:"auth-url" help:"Authorization endpoint (instead of --issuer)." placeholder:"URL"`
	TokenURL     string   `name:"token-url" help:"Token endpoint (instead of --issuer)." placeholder:"URL"`
	DeviceURL    string   `name:"device-url" help:"Device authorization endpoint." placeholder:"URL"`
	RevokeURL    string   `name:"revoke-url" help:"Revocation endpoint (RFC 7009)." placeholder:"URL"`
	Scope        []string `help:"Scope to request instead of the preset's (repeatable; several in one argument may be separated by spaces)." placeholder:"S"`
	IMAP         string   `name:"imap" help:"IMAP server: imaps://HOST:993 or imap://HOST:143 (STARTTLS)." placeholder:"URL"`
	POP3         string   `name:"pop3" help:"POP3 server: pop3s://HOST:995 or pop3://HOST:110 (STARTTLS)." placeholder:"URL"`
	SMTP         string   `name:"smtp" help:"SMTP server: smtps://HOST:465 or smtp://HOST:587 (STARTTLS)." placeholder:"URL"`
	Protocols    []string `help:"Protocols the account is used for (imap, pop3, smtp): scopes are asked for these only." placeholder:"P"`
	CAFile       string   `name:"ca-file" help:"PEM file of a private CA to trust for this account." placeholder:"PEM" type:"path"`
	Flow         string   `help:"App-only flow: client_credentials or service_account (Google Workspace); default: a person logs in." placeholder:"F"`
	Certificate  string   `name:"certificate-file" help:"Certificate for app-only client assertion (RFC 7523)." placeholder:"PEM" type:"path"`
	PrivateKey   string   `name:"private-key-file" help:"Private key for --certificate-file, if not in it." placeholder:"PEM" type:"path"`
	ServiceAcct  string   `name:"service-account-file" help:"Google service account JSON key." placeholder:"JSON" type:"path"`
	SASL         string   `help:"Mechanism upstream: xoauth2 or oauthbearer (default: the provider's)." placeholder:"M"`
}

func (c *addCmd) Run(e *env) error {
	path, err := configPath()
	if err != nil {
		return err
	}
	set, err := c.settings(e)
	if err != nil {
		return err
	}
	if len(set) == 0 {
		return errorf("mailkey add "+c.Account+" --provider PROVIDER --email ADDRESS --client-id ID", "nothing to set for account %s", c.Account)
	}
	if err := config.AddAccount(path, c.Account, set); err != nil {
		return configError(flagHints(err))
	}
	e.notef("account %s saved in %s", c.Account, path)
	c.explainTenant(e, c.Account)
	if c.Flow != "" {
		e.notef("next: mailkey token %s (app-only accounts need no login)", c.Account)
	} else {
		e.notef("next: mailkey login %s", c.Account)
	}
	return nil
}

// settings returns the settings the flags give, as config.AddAccount
// takes them; a client secret of "-" is read from standard input.
func (c *accountFlags) settings(e *env) ([]config.KV, error) {
	if c.ClientSecret == "-" {
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, errorf("pipe the secret in: printf %%s \"$SECRET\" | mailkey add ... --client-secret -", "cannot read the client secret from standard input")
		}
		c.ClientSecret = strings.TrimRight(line, "\r\n")
		if c.ClientSecret == "" {
			return nil, errorf("pipe the secret in: printf %%s \"$SECRET\" | mailkey add ... --client-secret -", "standard input held no client secret")
		}
	}
	var set []config.KV
	str := func(key, v string) {
		if v != "" {
			set = append(set, config.KV{Key: key, Value: v})
		}
	}
	list := func(key string, v []string) {
		if len(v) > 0 {
			set = append(set, config.KV{Key: key, Value: v})
		}
	}
	str("provider", c.Provider)
	str("email", c.Email)
	str("mailbox", c.Mailbox)
	str("client_id", c.ClientID)
	str("client_secret", c.ClientSecret)
	str("client_secret_cmd", c.SecretCmd)
	str("tenant", c.Tenant)
	str("cloud", c.Cloud)
	str("issuer", c.Issuer)
	str("auth_url", c.AuthURL)
	str("token_url", c.TokenURL)
	str("device_url", c.DeviceURL)
	str("revoke_url", c.RevokeURL)
	scopes, err := splitScopes(c.Scope)
	if err != nil {
		return nil, err
	}
	list("scopes", scopes)
	str("imap", c.IMAP)
	str("pop3", c.POP3)
	str("smtp", c.SMTP)
	list("protocols", c.Protocols)
	str("ca_file", abs(c.CAFile))
	str("flow", c.Flow)
	str("certificate_file", abs(c.Certificate))
	str("private_key_file", abs(c.PrivateKey))
	str("service_account_file", abs(c.ServiceAcct))
	str("sasl", c.SASL)
	return set, nil
}

// explainTenant says, when a new account of a tenanted provider names no
// tenant and so signs in through one that stands for many directories,
// what the tenants mean: a single-tenant app fails there (AADSTS50194),
// and nothing in the app's ID says which kind it is.
func (c *accountFlags) explainTenant(e *env, account string) {
	if c.Provider == "" || c.Tenant != "" {
		return
	}
	p, err := provider.Lookup(c.Provider)
	if err != nil || !p.TenantToChoose() {
		return
	}
	e.notef("no --tenant given: %s signs in through the %q tenant, which takes the accounts the app's registration allows:", account, p.DefaultTenant)
	e.notef("  common: work, school and personal Microsoft accounts; organizations: work and school accounts; consumers: personal accounts")
	e.notef("  an app registered for \"this organizational directory only\" (single tenant) needs its own tenant, else sign-in fails with AADSTS50194")
	e.notef("  to name it: mailkey add %s --tenant TENANT (the directory (tenant) ID from the app's overview page, or a domain such as contoso.onmicrosoft.com)", account)
}

// flagHints rewords the hint of each setting the new account lacks as the
// flag that supplies it: whoever runs mailkey add wants --email, not a
// line of TOML.
func flagHints(err error) error {
	var es config.Errors
	if !errors.As(err, &es) {
		return err
	}
	for _, ce := range es {
		// The field is accounts.NAME.KEY, NAME quoted when it is no bare
		// key (an address).
		i := strings.LastIndex(ce.Field, ".")
		key := ce.Field[i+1:]
		if i < 0 || !strings.HasPrefix(ce.Field, "accounts.") || ce.Msg != "missing "+key {
			continue
		}
		hint := "add --" + strings.ReplaceAll(key, "_", "-") + " … to the command"
		if ce.Hint != "" {
			hint += " (in the file: " + ce.Hint + ")"
		}
		ce.Hint = hint
	}
	return es
}

func abs(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// splitScopes takes --scope values as providers' documentation writes them,
// several in one argument separated by spaces ("openid email mail"), as
// well as one per flag.
func splitScopes(flags []string) ([]string, error) {
	var out []string
	for _, f := range flags {
		fs := strings.Fields(f)
		if len(fs) == 0 {
			return nil, errorf("name a scope after --scope, or leave the flag out for the provider's", "--scope %q names no scope", f)
		}
		out = append(out, fs...)
	}
	return out, nil
}
