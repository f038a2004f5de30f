package config

import (
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/provider"
)

// validAccount is a complete account; tests add or break keys after it.
const validAccount = `
	[accounts.work]
	provider = "google"
	email = "me@example.com"
	client_id = "id.apps.googleusercontent.com"
`

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir, "ca.pem")
	writeFile(t, dir, "notpem.pem", "hello\n")
	tests := []struct {
		name      string
		doc       string
		line      int
		field     string
		msg, hint string // substrings
	}{
		{"syntax: unclosed table", `
			[accounts.work
			provider = "google"`, 1, "", "expected ']'", "TOML syntax"},
		{"syntax: unterminated string", validAccount + `	tenant = "abc
			`, 5, "", "", "TOML syntax"},
		{"syntax: duplicate key", validAccount + `	email = "other@example.com"
			`, 5, "", "already", "TOML syntax"},
		{"unknown key with suggestion", validAccount + `	clientid = "x"
			`, 5, "accounts.work.clientid", "unknown key", "did you mean client_id?"},
		// Not "colour": it is two edits from cloud.
		{"unknown key without suggestion", validAccount + `	flavour = "blue"
			`, 5, "accounts.work.flavour", "unknown key", "valid keys here: auth_url, ca_file"},
		{"unknown top-level table", `
			[acounts.work]
			email = "a@b.c"`, 1, "acounts", "unknown key", "did you mean accounts?"},
		{"unknown top-level key", `
			refresh_margn = "5m"`, 1, "refresh_margn", "unknown key", "did you mean refresh_margin?"},
		{"unknown proxy key", `
			[proxy]
			imap4 = "127.0.0.1:1143"`, 2, "proxy.imap4", "unknown key", "did you mean imap"},
		{"unknown subtable in account", validAccount + `	[accounts.work.extra]
			`, 5, "accounts.work.extra", "unknown key", ""},
		{"array of tables", `
			[[accounts]]
			name = "x"`, 1, "accounts", "arrays of tables", "[accounts.NAME]"},
		{"missing email", `
			[accounts.work]
			provider = "google"
			client_id = "x"`, 1, "accounts.work.email", "missing email", "you@example.com"},
		{"mailbox not an address", validAccount + `	mailbox = "shared"
			`, 5, "accounts.work.mailbox", `"shared" is not an email address`, "shared@contoso.com"},
		{"mailbox is email", validAccount + `	mailbox = "Me@example.com"
			`, 5, "accounts.work.mailbox", "same address as email", "remove mailbox"},
		{"missing client_id", `
			[accounts.work]
			provider = "google"
			email = "me@example.com"`, 1, "accounts.work.client_id", "missing client_id", "client_id ="},
		{"empty client_id", `
			[accounts.work]
			provider = "google"
			email = "me@example.com"
			client_id = ""`, 4, "accounts.work.client_id", "client_id is empty", ""},
		{"missing provider", `
			[accounts.work]
			email = "me@example.com"
			client_id = "x"`, 1, "accounts.work.provider", "missing provider", "google, microsoft, outlook, yahoo, aol, fastmail, generic"},
		{"unknown provider", `
			[accounts.work]
			provider = "gmail"
			email = "me@example.com"
			client_id = "x"`, 2, "accounts.work.provider", `unknown provider "gmail"`, "valid providers: google, microsoft, outlook, yahoo, aol, fastmail, generic"},
		{"misspelt provider", `
			[accounts.work]
			provider = "micrsoft"
			email = "me@example.com"
			client_id = "x"`, 2, "accounts.work.provider", "unknown provider", "did you mean microsoft?"},
		{"http endpoint off loopback", validAccount + `	token_url = "http://login.example/token"
			`, 5, "accounts.work.token_url", "must use https", "http:// only on 127.0.0.1"},
		{"http issuer off loopback", validAccount + `	issuer = "http://10.1.2.3"
			`, 5, "accounts.work.issuer", "must use https", ""},
		{"server URL does not parse", validAccount + `	imap = "imaps://imap.example.com:99999"
			`, 5, "accounts.work.imap", "port must be a number", "imaps://HOST:993 (TLS), imap://HOST:143 (STARTTLS)"},
		{"server URL of another protocol", validAccount + `	smtp = "imaps://imap.example.com"
			`, 5, "accounts.work.smtp", "scheme imaps:// is not for smtp", "smtps://HOST:465"},
		{"invalid tenant", `
			[accounts.work]
			provider = "microsoft"
			email = "me@example.com"
			client_id = "x"
			tenant = "contoso"`, 5, "accounts.work.tenant", `invalid tenant "contoso"`, "common, organizations, consumers"},
		{"tenant on an untenanted provider", validAccount + `	tenant = "contoso.com"
			`, 5, "accounts.work.tenant", "takes no tenant", ""},
		{"misspelt cloud", `
			[accounts.work]
			provider = "microsoft"
			email = "me@contoso.us"
			client_id = "x"
			cloud = "gcchigh"`, 5, "accounts.work.cloud", `unknown cloud "gcchigh"`, "did you mean gcc-high? write one of global, gcc-high, dod, china"},
		{"cloud on a provider without national clouds", validAccount + `	cloud = "china"
			`, 5, "accounts.work.cloud", "has no national clouds", "only microsoft"},
		{"missing ca_file", validAccount + `	ca_file = "nope.pem"
			`, 5, "accounts.work.ca_file", "cannot read " + filepath.Join(dir, "nope.pem") + ": no such file", "readable"},
		{"ca_file without certificates", validAccount + `	ca_file = "notpem.pem"
			`, 5, "accounts.work.ca_file", "holds no PEM certificate", "BEGIN CERTIFICATE"},
		{"ca_file is a directory", validAccount + `	ca_file = "."
			`, 5, "accounts.work.ca_file", "not a regular file", ""},
		{"missing certificate_file", `
			[accounts.work]
			provider = "microsoft"
			email = "me@example.com"
			client_id = "x"
			tenant = "contoso.com"
			flow = "client_credentials"
			certificate_file = "missing.pem"
			private_key_file = "ca.pem"`, 7, "accounts.work.certificate_file", "cannot read", ""},
		{"missing private_key_file", `
			[accounts.work]
			provider = "microsoft"
			email = "me@example.com"
			client_id = "x"
			tenant = "contoso.com"
			flow = "client_credentials"
			certificate_file = "ca.pem"
			private_key_file = "missing.key"`, 8, "accounts.work.private_key_file", "cannot read", ""},
		{"certificate_file without private_key_file", `
			[accounts.work]
			provider = "microsoft"
			email = "me@example.com"
			client_id = "x"
			tenant = "contoso.com"
			flow = "client_credentials"
			certificate_file = "ca.pem"`, 1, "accounts.work.private_key_file", "go together", ""},
		{"missing service_account_file", `
			[accounts.work]
			provider = "google"
			email = "me@example.com"
			flow = "service_account"
			service_account_file = "sa.json"`, 5, "accounts.work.service_account_file", "cannot read", ""},
		{"string where a list is expected", validAccount + `	scopes = "https://mail.google.com/"
			`, 5, "accounts.work.scopes", "must be an array of strings, not a string", `scopes = ["…", "…"]`},
		{"list of the wrong type", validAccount + `	protocols = ["imap", 2]
			`, 5, "accounts.work.protocols", "must be an array of strings, but holds an integer", ""},
		{"list where a string is expected", `
			[accounts.work]
			provider = "google"
			email = ["a@b.c"]
			client_id = "x"`, 3, "accounts.work.email", "must be a string, not an array", `email = "…"`},
		{"table where a string is expected", validAccount + `	[accounts.work.tenant]
			`, 5, "accounts.work.tenant", "must be a string, not a table", ""},
		{"integer where a bool is expected", `
			[proxy]
			allow_non_loopback = 1`, 2, "proxy.allow_non_loopback", "must be true or false, not an integer", ""},
		{"account that is not a table", `
			[accounts]
			work = "google"`, 2, "accounts.work", "must be a table, not a string", ""},
		{"bad duration", `
			refresh_margin = "5 minutes"`, 1, "refresh_margin", `invalid duration "5 minutes"`, `"5m"`},
		{"duration of the wrong type", `
			refresh_margin = 300`, 1, "refresh_margin", "must be a duration string", `refresh_margin = "5m"`},
		{"duration out of range", `
			refresh_margin = "2h"`, 1, "refresh_margin", "out of range", ""},
		{"email without @", `
			[accounts.work]
			provider = "google"
			email = "me.example.com"
			client_id = "x"`, 3, "accounts.work.email", `"me.example.com" is not an email address`, "you@example.com"},
		{"account name with a space", `
			[accounts."my work"]
			provider = "google"
			email = "me@example.com"
			client_id = "x"`, 1, `accounts."my work"`, "has a character other than", "letters, digits"},
		{"account name with a slash", `
			[accounts."../x"]
			provider = "google"
			email = "me@example.com"
			client_id = "x"`, 1, `accounts."../x"`, "starts with '.'", ""},
		{"account name too long", `
			[accounts.` + strings.Repeat("a", 65) + `]
			provider = "google"
			email = "me@example.com"
			client_id = "x"`, 1, "accounts." + strings.Repeat("a", 65), "longer than 64", ""},
		{"oauthbearer on exchange", `
			[accounts.work]
			provider = "microsoft"
			email = "me@example.com"
			client_id = "x"
			sasl = "oauthbearer"`, 5, "accounts.work.sasl", "do not offer OAUTHBEARER", "xoauth2"},
		{"unknown sasl", validAccount + `	sasl = "plain"
			`, 5, "accounts.work.sasl", "unknown SASL mechanism", ""},
		{"unknown flow", validAccount + `	flow = "password"
			`, 5, "accounts.work.flow", `unknown flow "password"`, "client_credentials"},
		{"app-only on a multi-tenant endpoint", `
			[accounts.work]
			provider = "microsoft"
			email = "me@example.com"
			client_id = "x"
			client_secret = "y"
			flow = "client_credentials"`, 6, "accounts.work.flow", "need a specific tenant, not common", "tenant ="},
		{"app-only without credentials", `
			[accounts.work]
			provider = "microsoft"
			email = "me@example.com"
			client_id = "x"
			tenant = "contoso.com"
			flow = "client_credentials"`, 6, "accounts.work.flow", "needs a client secret or a certificate", ""},
		{"service account on microsoft", `
			[accounts.work]
			provider = "microsoft"
			email = "me@example.com"
			tenant = "contoso.com"
			flow = "service_account"`, 5, "accounts.work.flow", "service accounts are for google", "client_credentials"},
		{"client credentials on google", validAccount + `	client_secret = "y"
			flow = "client_credentials"`, 6, "accounts.work.flow", "google has no client credentials", "service_account"},
		{"both secret and command", validAccount + `	client_secret = "y"
			client_secret_cmd = "pass show x"`, 6, "accounts.work.client_secret_cmd", "both set", ""},
		{"secret expiry not a date", validAccount + `	client_secret = "y"
			client_secret_expires = "30/06/2027"`, 6, "accounts.work.client_secret_expires", `"30/06/2027" is not a date`, `client_secret_expires = "2027-06-30"`},
		{"secret expiry as a bare date", validAccount + `	client_secret = "y"
			client_secret_expires = 2027-06-30`, 6, "accounts.work.client_secret_expires", "must be a date string", `client_secret_expires = "2027-06-30"`},
		{"secret expiry without a secret", validAccount + `	client_secret_expires = "2027-06-30"`, 5, "accounts.work.client_secret_expires", "there is no client secret", "client_secret_cmd"},
		{"generic without endpoints", `
			[accounts.work]
			provider = "generic"
			email = "me@example.com"
			client_id = "x"`, 1, "accounts.work.issuer", "generic provider needs issuer", ""},
		{"generic without token_url", `
			[accounts.work]
			provider = "generic"
			email = "me@example.com"
			client_id = "x"
			auth_url = "https://login.example/auth"`, 1, "accounts.work.token_url", "missing token_url", ""},
		{"protocol without server", `
			[accounts.work]
			provider = "generic"
			issuer = "https://login.example"
			email = "me@example.com"
			client_id = "x"
			imap = "imaps://mail.example"
			protocols = ["imap", "pop3"]`, 7, "accounts.work.protocols", "no pop3 server", ""},
		{"unknown protocol", validAccount + `	protocols = ["imap", "jmap"]
			`, 5, "accounts.work.protocols", `unknown protocol "jmap"`, ""},
		{"empty scopes", validAccount + `	scopes = []
			`, 5, "accounts.work.scopes", "scopes is empty", ""},
		{"plain listener beyond loopback", `
			[proxy]
			imap = "0.0.0.0:143"
			allow_non_loopback = true`, 2, "proxy.imap", "must use TLS", "imaps"},
		{"TLS listener beyond loopback without permission", `
			[proxy]
			imaps = ":993"`, 2, "proxy.imaps", "not on loopback", "allow_non_loopback = true"},
		{"status beyond loopback", `
			[proxy]
			status = "192.0.2.1:8025"`, 2, "proxy.status", "beyond loopback", ""},
		{"listener without port", `
			[proxy]
			pop3 = "127.0.0.1"`, 2, "proxy.pop3", "has no port", "HOST:PORT"},
		{"bad log format", `
			[proxy]
			log_format = "xml"`, 2, "proxy.log_format", `unknown log format "xml"`, `"text" or "json"`},
		{"bad log level", `
			[proxy]
			log_level = "verbose"`, 2, "proxy.log_level", `unknown log level "verbose"`, `"debug", "info", "warn" or "error"`},
		{"cert_file without key_file", `
			[proxy]
			cert_file = "ca.pem"`, 1, "proxy.key_file", "go together", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, "config.toml", dedent(tt.doc))
			cfg, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", cfg)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load error %T is not Errors: %v", err, err)
			}
			var match *Error
			for _, e := range errs {
				if e.Line == tt.line && e.Field == tt.field && strings.Contains(e.Msg, tt.msg) && strings.Contains(e.Hint, tt.hint) {
					match = e
				}
			}
			if match == nil {
				t.Fatalf("no error at line %d field %q msg ~%q hint ~%q; got:\n%s\nhints: %q",
					tt.line, tt.field, tt.msg, tt.hint, err, hints(errs))
			}
			if match.File != path {
				t.Errorf("File = %q, want %q", match.File, path)
			}
			if match.Column < 1 {
				t.Errorf("Column = %d", match.Column)
			}
			want := path + ":" + strconv.Itoa(tt.line) + ": "
			if tt.field != "" {
				want += tt.field + ": "
			}
			if !strings.HasPrefix(match.Error(), want) {
				t.Errorf("Error() = %q, want prefix %q", match.Error(), want)
			}
			if strings.HasSuffix(match.Msg, ".") || strings.HasSuffix(match.Msg, "\n") {
				t.Errorf("message ends with punctuation: %q", match.Msg)
			}
		})
	}
}

func hints(errs Errors) []string {
	var hs []string
	for _, e := range errs {
		hs = append(hs, e.Hint)
	}
	return hs
}

func TestLoadCollectsAllErrorsInLineOrder(t *testing.T) {
	path := writeFile(t, t.TempDir(), "config.toml", dedent(`
		refresh_margin = "soon"
		[accounts.a]
		provider = "gmail"
		email = "nobody"
		[accounts.b]
		provider = "google"
		email = "b@example.com"
		client_id = "x"
		imap = "ftp://x"
	`))
	_, err := Load(path)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("err = %v", err)
	}
	var got []string
	for _, e := range errs {
		got = append(got, strconv.Itoa(e.Line)+" "+e.Field)
	}
	want := []string{
		"1 refresh_margin",
		"2 accounts.a.client_id",
		"3 accounts.a.provider",
		"4 accounts.a.email",
		"9 accounts.b.imap",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\ngot  %q\nwant %q", err, got, want)
	}
	if strings.Count(err.Error(), "\n") != len(want)-1 {
		t.Errorf("Errors.Error() is not one line per problem:\n%s", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.toml")
	_, err := Load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.File != path || e.Msg != "configuration file does not exist" {
		t.Fatalf("err = %#v", err)
	}
}

func TestLoadRefusesNonRegularFile(t *testing.T) {
	_, err := Load(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadValid(t *testing.T) {
	dir := t.TempDir()
	ca := writeCert(t, dir, "ca.pem")
	path := writeFile(t, dir, "config.toml", dedent(`
		# mailkey
		refresh_margin = "90s"

		[proxy]
		imap = ""
		smtps = "[::1]:1465"
		status = "localhost:9000"
		log_format = "json"

		[accounts.work]
		provider = "microsoft"
		email = "a@contoso.com"
		client_id = "cid"
		client_secret = "shh"
		tenant = "contoso.onmicrosoft.com"
		protocols = ["smtp", "imap"]
		ca_file = "ca.pem"
		mailbox = "shared@contoso.com"

		[accounts."me@gmail.com"]
		provider = "google"
		email = "me@gmail.com"
		client_id = "gid"
		smtp = "smtp://smtp.gmail.com:587"
		sasl = "OAUTHBEARER"

		[accounts]
		home = { provider = "fastmail", email = "x@fastmail.com", client_id = "f" }

		# dotted keys at the top level belong to the root table, so they
		# are written before any table header in real files; here they are
		# inside [accounts] relative to it.
		lab.provider = "generic"
		lab.email = "lab@example.test"
		lab.client_id = "lab"
		lab.auth_url = "http://127.0.0.1:9999/auth"
		lab.token_url = "http://127.0.0.1:9999/token"
		lab.imap = "127.0.0.1:10143"
	`))
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RefreshMargin != 90*time.Second || cfg.File != path {
		t.Errorf("RefreshMargin = %v, File = %q", cfg.RefreshMargin, cfg.File)
	}
	wantProxy := Proxy{IMAP: "", POP3: "127.0.0.1:1110", SMTP: "127.0.0.1:1587", SMTPS: "[::1]:1465", Status: "localhost:9000", LogFormat: "json", LogLevel: "info", Agent: true}
	if cfg.Proxy != wantProxy {
		t.Errorf("Proxy = %+v\nwant %+v", cfg.Proxy, wantProxy)
	}
	if got, want := cfg.Names(), []string{"work", "me@gmail.com", "home", "lab"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names = %q, want %q", got, want)
	}

	work, _ := cfg.Account("work")
	if work.Line != 10 || work.ClientSecret != "shh" || work.Tenant != "contoso.onmicrosoft.com" || work.CAFile != ca {
		t.Errorf("work = %+v", work)
	}
	if work.Email != "a@contoso.com" || work.Mailbox != "shared@contoso.com" || work.User() != "shared@contoso.com" {
		t.Errorf("work: email %q, mailbox %q, user %q", work.Email, work.Mailbox, work.User())
	}
	if want := []provider.Protocol{provider.SMTP, provider.IMAP}; !reflect.DeepEqual(work.Protocols, want) {
		t.Errorf("work.Protocols = %v, want %v", work.Protocols, want)
	}
	if got := work.Servers[provider.SMTP].String(); got != "smtp://smtp.office365.com:587" {
		t.Errorf("work smtp = %s", got)
	}

	g, _ := cfg.Account("me@gmail.com")
	if g.SASL != "oauthbearer" {
		t.Errorf("SASL = %q", g.SASL)
	}
	if want := []provider.Protocol{provider.SMTP}; !reflect.DeepEqual(g.Protocols, want) {
		t.Errorf("explicit server should decide protocols: %v", g.Protocols)
	}
	if got := g.Servers[provider.IMAP].String(); got != "imaps://imap.gmail.com:993" {
		t.Errorf("preset imap server lost: %s", got)
	}

	home, _ := cfg.Account("home")
	if home.User() != "x@fastmail.com" {
		t.Errorf("home.User() = %q, want its email", home.User())
	}
	if home.Provider != "fastmail" || home.Email != "x@fastmail.com" || len(home.Protocols) != 3 {
		t.Errorf("home = %+v", home)
	}

	lab, _ := cfg.Account("lab")
	if lab.TokenURL != "http://127.0.0.1:9999/token" || !reflect.DeepEqual(lab.Protocols, []provider.Protocol{provider.IMAP}) {
		t.Errorf("lab = %+v", lab)
	}
	if srv := lab.Servers[provider.IMAP]; srv.ImplicitTLS || srv.Port != 10143 {
		t.Errorf("lab imap = %+v", srv)
	}

	_, err = cfg.Account("wrok")
	var ue *UnknownAccountError
	if !errors.As(err, &ue) || ue.Hint() != "did you mean work?" {
		t.Errorf("Account(wrok) = %v", err)
	}
}

func TestLoadDefaults(t *testing.T) {
	path := writeFile(t, t.TempDir(), "config.toml", "")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RefreshMargin != DefaultRefreshMargin || cfg.Proxy != DefaultProxy() || len(cfg.Accounts) != 0 {
		t.Errorf("cfg = %+v", cfg)
	}
}

func TestLoadTopLevelDottedKeys(t *testing.T) {
	path := writeFile(t, t.TempDir(), "config.toml", dedent(`
		accounts.work.provider = "google"
		accounts.work.email = "me@example.com"
		accounts.work.client_id = "x"
		accounts.work.imap = "imap.example.com:1993"
	`))
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := cfg.Account("work")
	if a.Line != 1 || a.Email != "me@example.com" || a.Servers[provider.IMAP].String() != "imap://imap.example.com:1993" {
		t.Errorf("account = %+v", a)
	}
}

func TestRelativeAndHomePaths(t *testing.T) {
	dir := t.TempDir()
	home := t.TempDir()
	t.Setenv("HOME", home)
	writeCert(t, home, "home-ca.pem")
	writeCert(t, dir, "ca.pem")
	path := writeFile(t, dir, "config.toml", dedent(`
		[accounts.a]
		provider = "google"
		email = "a@example.com"
		client_id = "x"
		ca_file = "~/home-ca.pem"
		[accounts.b]
		provider = "google"
		email = "b@example.com"
		client_id = "x"
		ca_file = "./ca.pem"
	`))
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Accounts[0].CAFile != filepath.Join(home, "home-ca.pem") || cfg.Accounts[1].CAFile != filepath.Join(dir, "ca.pem") {
		t.Errorf("paths: %q %q", cfg.Accounts[0].CAFile, cfg.Accounts[1].CAFile)
	}
}

// TestSecretsStayOutOfErrors: no error Load reports may contain a client
// secret, whatever is wrong with it.
func TestSecretsStayOutOfErrors(t *testing.T) {
	const secret = "s3cr3t-VALUE-42"
	docs := []string{
		validAccount + `client_secret = ["` + secret + `"]`,
		validAccount + `client_secret = { v = "` + secret + `" }`,
		validAccount + `client_secret_cmd = ["echo ` + secret + `"]`,
		validAccount + `client_secret = "` + secret + `\q"`,
		validAccount + `client_secret = "` + secret,
		validAccount + `client_secret = ` + secret,
		validAccount + `client_secret = 1` + secret,
		validAccount + `client_secret = '''` + secret,
		validAccount + `client_secret = "` + secret + `" junk`,
		validAccount + `client_secret = "` + secret + "\"\nclient_secret = \"" + secret + `"`,
		"[accounts]\nwork = { provider = \"google\", client_secret = \"" + secret + "\\x\" }",
		"[accounts.work]\nclient_secret = \"\"\"\n" + secret + "\\q\n\"\"\"",
	}
	for _, doc := range docs {
		path := writeFile(t, t.TempDir(), "config.toml", dedent(doc))
		_, err := Load(path)
		if err == nil {
			t.Fatalf("Load accepted:\n%s", doc)
		}
		var errs Errors
		errors.As(err, &errs)
		for _, e := range errs {
			if strings.Contains(e.Error()+e.Hint, secret) || strings.Contains(e.Error()+e.Hint, "VALUE") {
				t.Errorf("error leaks the secret:\n%s\n%s", err, e.Hint)
			}
		}
		// The secret's type error still names the field and line.
		if strings.HasPrefix(doc, validAccount+"client_secret = [") && !strings.Contains(err.Error(), ":5: accounts.work.client_secret: must be a string") {
			t.Errorf("type error on client_secret: %v", err)
		}
	}
}

func TestAccountStringHasNoSecret(t *testing.T) {
	a := &Account{Name: "w", Provider: "google", Email: "a@b.c", ClientSecret: "s3cr3t", ClientSecretCmd: "echo s3cr3t"}
	for _, s := range []string{a.String(), fmtV(a)} {
		if strings.Contains(s, "s3cr3t") {
			t.Errorf("formatted account leaks its secret: %s", s)
		}
	}
}

func TestPath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("MAILKEY_CONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", "")
	check := func(want string) {
		t.Helper()
		got, err := Path()
		if err != nil || got != want {
			t.Errorf("Path() = %q, %v; want %q", got, err, want)
		}
	}
	check(filepath.Join(home, ".config", "mailkey", "config.toml"))
	t.Setenv("XDG_CONFIG_HOME", "relative/ignored")
	check(filepath.Join(home, ".config", "mailkey", "config.toml"))
	t.Setenv("XDG_CONFIG_HOME", "/xdg")
	check("/xdg/mailkey/config.toml")
	t.Setenv("MAILKEY_CONFIG", "/etc/mailkey.toml")
	check("/etc/mailkey.toml")
}

func TestSuggest(t *testing.T) {
	cands := []string{"client_id", "client_secret", "email", "provider", "imap", "pop3", "smtp"}
	for in, want := range map[string]string{
		"clientid": "client_id", "client-secret": "client_secret", "emial": "email", "EMAIL": "email",
		"provder": "provider", "imap4": "imap", "pop": "pop3", "colour": "", "x": "", "smpt": "smtp",
	} {
		if got := suggest(in, cands); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzLoad(f *testing.F) {
	seeds := []string{
		dedent(validAccount),
		"[proxy]\nimap = \"127.0.0.1:1\"\nallow_non_loopback = true\n",
		"accounts.a.email = 1\n[accounts.b]\nscopes = [1, \"x\"]\n",
		"[accounts]\nw = { provider = \"generic\", issuer = \"https://x\" }\n",
		"refresh_margin = \"1m\"\n[[accounts]]\n",
		"a = [\n1,\n]\n{",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parse(filepath.Join(dir, "fuzz.toml"), data)
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without error")
			}
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error is not Errors: %v", err)
		}
		for _, e := range errs {
			if e.Line < 1 || e.Column < 1 {
				t.Fatalf("error without a position: %#v", e)
			}
		}
	})
}
