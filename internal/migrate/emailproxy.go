package migrate

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/ini.v1"

	"github.com/mailkey/mailkey/internal/provider"
)

// Iteration counts email-oauth2-proxy derives its keys with
// (emailproxy.py's Cryptographer): the count stored with the tokens
// (token_iterations) comes first; its current and legacy defaults are
// tried after it, as the proxy's MultiFernet does.
const (
	proxyIterations       = 1_200_000
	proxyLegacyIterations = 100_000
	// maxProxyIterations bounds a stored count: a file could otherwise make
	// the import run for hours.
	maxProxyIterations = 100_000_000
)

// proxyCachedKeys are the keys the proxy takes from its --cache-store file
// (emailproxy.py's AppConfig._CACHED_OPTION_KEYS); the rest of the file is
// ignored, as the proxy ignores it.
var proxyCachedKeys = []string{"access_token", "access_token_expiry", "refresh_token", "token_salt", "token_iterations",
	"client_secret_encrypted", "last_activity"}

// proxyServerSection matches emailproxy.py's server sections, [IMAP-1993]:
// a protocol and the local port the proxy listens on.
var proxyServerSection = regexp.MustCompile(`^(IMAP|POP|SMTP)-\d+$`)

// proxyFlowsWithoutGrant are the oauth2_flow values that keep no refresh
// token: each token comes from the client's own credentials (or the user's
// password), so there is no grant to bring over.
var proxyFlowsWithoutGrant = []string{"client_credentials", "service_account", "password"}

// UnsupportedError says that an account of the file works in a way that
// import cannot bring over.
type UnsupportedError struct {
	Format  Format
	Account string
	Reason  string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("account %s in the %s cannot be imported: %s", e.Account, e.Format, e.Reason)
}

// loadINI reads a configuration as Python's configparser does (the proxy
// uses ConfigParser(interpolation=None)): keys in lower case, values that
// span indented lines, comments on lines of their own, and section names
// taken as they are (an address has dots, which are not child sections).
func loadINI(data []byte) (*ini.File, error) {
	f, err := ini.LoadSources(ini.LoadOptions{
		InsensitiveKeys:            true,
		AllowPythonMultilineValues: true,
		IgnoreInlineComment:        true,
		PreserveSurroundedQuote:    true,
		KeyValueDelimiters:         "=:",
		ChildSectionDelimiter:      "\x00",
	}, data)
	if err != nil {
		// ini's errors quote the line, which may hold a secret.
		return nil, &CorruptError{Format: EmailProxy, Reason: "it is not an INI file as Python's configparser reads it"}
	}
	return f, nil
}

// readEmailProxy reads email-oauth2-proxy's configuration (emailproxy.config)
// and, when the proxy ran with --cache-store FILE, that file, which holds
// the cached tokens instead. Each account is a section named by its
// address; its tokens are Fernet tokens under a key derived from the
// password the mail client logs in to the proxy with (PBKDF2-HMAC-SHA256,
// the section's token_salt and token_iterations). password is asked for
// each account that holds tokens, in file order. names, when not empty,
// selects accounts.
func readEmailProxy(data, cache []byte, names []string, password func(account string) (string, error)) ([]*Grant, error) {
	cfg, err := loadINI(data)
	if err != nil {
		return nil, err
	}
	if cache != nil {
		c, err := loadINI(cache)
		if err != nil {
			return nil, err
		}
		for _, s := range c.Sections() {
			if !strings.Contains(s.Name(), "@") {
				continue
			}
			dst := cfg.Section(s.Name())
			for _, k := range s.Keys() {
				if slices.Contains(proxyCachedKeys, k.Name()) {
					dst.Key(k.Name()).SetValue(k.Value())
				}
			}
		}
	}
	var accounts []*ini.Section
	for _, s := range cfg.Sections() {
		if i := strings.Index(s.Name(), "@"); i > 0 {
			accounts = append(accounts, s)
		}
	}
	if len(accounts) == 0 {
		return nil, &CorruptError{Format: EmailProxy, Reason: "it has no account section (an [address@example.com] section)"}
	}
	known := make([]string, len(accounts))
	for i, s := range accounts {
		known[i] = s.Name()
	}
	for _, n := range names {
		if !slices.Contains(known, n) {
			return nil, &NotInFileError{Format: EmailProxy, Account: n, Known: known}
		}
	}
	servers := proxyServers(cfg)
	var grants []*Grant
	for _, s := range accounts {
		if len(names) > 0 && !slices.Contains(names, s.Name()) {
			continue
		}
		explicit := len(names) > 0
		if flow := s.Key("oauth2_flow").String(); slices.Contains(proxyFlowsWithoutGrant, flow) {
			if explicit {
				return nil, &UnsupportedError{Format: EmailProxy, Account: s.Name(), Reason: "its oauth2_flow " + flow + " keeps no grant; add it with mailkey add instead"}
			}
			continue
		}
		if s.Key("refresh_token").String() == "" {
			if explicit {
				return nil, &NoTokensError{Format: EmailProxy, Account: s.Name()}
			}
			continue
		}
		pw, err := password(s.Name())
		if err != nil {
			return nil, err
		}
		g, err := proxyGrant(s, servers, pw)
		if err != nil {
			return nil, err
		}
		grants = append(grants, g)
	}
	if len(grants) == 0 {
		return nil, &NoTokensError{Format: EmailProxy, Account: strings.Join(known, ", ")}
	}
	return grants, nil
}

// proxyServer is one [IMAP-1993] section: the remote server it proxies.
type proxyServer struct {
	proto    provider.Protocol
	host     string
	port     int
	starttls bool
}

func proxyServers(cfg *ini.File) []proxyServer {
	var out []proxyServer
	for _, s := range cfg.Sections() {
		m := proxyServerSection.FindStringSubmatch(s.Name())
		if m == nil {
			continue
		}
		host := s.Key("server_address").String()
		port, err := strconv.Atoi(s.Key("server_port").String())
		if host == "" || err != nil || port <= 0 || port > 65535 {
			continue
		}
		proto := map[string]provider.Protocol{"IMAP": provider.IMAP, "POP": provider.POP3, "SMTP": provider.SMTP}[m[1]]
		starttls, _ := strconv.ParseBool(s.Key("server_starttls").String())
		out = append(out, proxyServer{proto: proto, host: host, port: port, starttls: starttls})
	}
	return out
}

// url writes the server as mailkey does: the proxy speaks implicit TLS to
// its servers unless server_starttls is set (SMTP only).
func (s proxyServer) url() string {
	scheme := map[provider.Protocol]string{provider.IMAP: "imaps", provider.POP3: "pop3s", provider.SMTP: "smtps"}[s.proto]
	if s.starttls {
		scheme = strings.TrimSuffix(scheme, "s")
	}
	return scheme + "://" + s.host + ":" + strconv.Itoa(s.port)
}

func proxyGrant(s *ini.Section, servers []proxyServer, password string) (*Grant, error) {
	name := s.Name()
	key := func(k string) string { return strings.TrimSpace(s.Key(k).String()) }
	open, err := proxyOpener(name, key("token_salt"), key("token_iterations"), password)
	if err != nil {
		return nil, err
	}
	g := &Grant{Name: name}
	if g.RefreshToken, err = open(key("refresh_token")); err != nil {
		return nil, err
	}
	if at := key("access_token"); at != "" {
		if g.AccessToken, err = open(at); err != nil {
			return nil, err
		}
		if exp, err := strconv.ParseInt(key("access_token_expiry"), 10, 64); err == nil {
			g.Expiry = time.Unix(exp, 0)
		}
	}

	g.set("email", name, "email from the section name")
	tokenURL, authURL := key("token_url"), key("permission_url")
	preset, known := provider.ForTokenURL(tokenURL)
	if known {
		g.set("provider", preset.Name, fmt.Sprintf("provider %s from token_url", preset.Name))
		if tenant := presetTenant(preset, tokenURL); tenant != "" && tenant != preset.DefaultTenant {
			g.set("tenant", tenant, "tenant "+tenant+" from token_url")
		}
	} else {
		g.set("provider", provider.Generic, "provider generic, with auth_url from permission_url and token_url from token_url")
		if authURL != "" {
			g.set("auth_url", authURL, "")
		}
		g.set("token_url", tokenURL, "")
		g.check("the file names no revocation or introspection endpoint, nor an issuer whose discovery would", "issuer", "revoke_url")
	}
	if id := key("client_id"); id != "" {
		g.set("client_id", id, "client_id")
	}
	switch secret := key("client_secret"); {
	case secret != "":
		g.set("client_secret", secret, "client_secret")
	case key("client_secret_encrypted") != "":
		cs, err := open(key("client_secret_encrypted"))
		if err != nil {
			return nil, err
		}
		g.set("client_secret", cs, "client_secret, decrypted from client_secret_encrypted")
	}
	if key("jwt_certificate_path") != "" {
		g.check("the account's client authenticates with a certificate (jwt_certificate_path), which mailkey does only for app-only accounts: the app needs a client secret, or none", "client_secret")
	}
	if scope := strings.Fields(key("oauth2_scope")); len(scope) > 0 {
		g.set("scopes", scope, "scopes from oauth2_scope")
		g.Scopes = scope
	}
	for _, proto := range provider.Protocols {
		var cands []proxyServer
		for _, sv := range servers {
			if sv.proto == proto {
				cands = append(cands, sv)
			}
		}
		presetHost := ""
		if known && preset.Servers[proto] != "" {
			if ps, err := provider.ParseServer(proto, preset.Servers[proto]); err == nil {
				presetHost = ps.Host
			}
		}
		switch {
		case len(cands) == 1:
			g.set(string(proto), cands[0].url(), fmt.Sprintf("%s server %s from the file's server section", proto, cands[0].url()))
		case len(cands) > 1 && slices.ContainsFunc(cands, func(sv proxyServer) bool { return sv.host == presetHost }):
			g.Mapped = append(g.Mapped, fmt.Sprintf("%s server: the preset's (the file proxies it among others)", proto))
		case len(cands) > 1:
			g.check(fmt.Sprintf("the file proxies several %s servers, and none is the preset's: which is this account's", proto), string(proto))
		}
	}
	return g, nil
}

// presetTenant returns the tenant in tokenURL where the preset's token URL
// has its tenant placeholder: login.microsoftonline.com/TENANT/oauth2/….
func presetTenant(p provider.Preset, tokenURL string) string {
	if !p.Tenanted {
		return ""
	}
	pu, err1 := url.Parse(p.TokenURL)
	u, err2 := url.Parse(tokenURL)
	if err1 != nil || err2 != nil {
		return ""
	}
	want, got := strings.Split(pu.Path, "/"), strings.Split(u.Path, "/")
	if len(want) != len(got) {
		return ""
	}
	for i, seg := range want {
		if strings.Contains(seg, "{tenant}") || strings.Contains(seg, "%7Btenant%7D") {
			if provider.ValidTenant(got[i]) {
				return got[i]
			}
			return ""
		}
	}
	return ""
}

// proxyOpener returns what decrypts the section's values with password:
// the Fernet key derived with each iteration count the proxy may have
// used, tried in turn, derived only when needed.
func proxyOpener(account, salt, iterations, password string) (func(string) (string, error), error) {
	rawSalt, err := base64.StdEncoding.DecodeString(salt)
	if err != nil || len(rawSalt) == 0 {
		return nil, &CorruptError{Format: EmailProxy, Reason: "token_salt of account " + account + " is not base64"}
	}
	counts := []int{proxyLegacyIterations}
	if iterations != "" {
		n, err := strconv.Atoi(iterations)
		if err != nil || n <= 0 || n > maxProxyIterations {
			return nil, &CorruptError{Format: EmailProxy, Reason: "token_iterations of account " + account + " is not a sensible count"}
		}
		counts = []int{n}
	}
	for _, n := range []int{proxyIterations, proxyLegacyIterations} {
		if !slices.Contains(counts, n) {
			counts = append(counts, n)
		}
	}
	keys := make([][]byte, len(counts))
	return func(token string) (string, error) {
		for i, n := range counts {
			if keys[i] == nil {
				k, err := pbkdf2.Key(sha256.New, password, rawSalt, n, 32)
				if err != nil {
					return "", err
				}
				keys[i] = k
			}
			if out, err := fernetOpen(keys[i], token); err == nil {
				return string(out), nil
			}
		}
		return "", fmt.Errorf("account %s: %w", account, ErrWrongPassword)
	}, nil
}
