package config

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/mailkey/mailkey/internal/provider"
)

type fieldKind int

const (
	fString fieldKind = iota
	fList
	fBool
)

var topFields = map[string]fieldKind{"refresh_margin": fString}

var proxyFields = map[string]fieldKind{
	"imap": fString, "pop3": fString, "smtp": fString,
	"imaps": fString, "pop3s": fString, "smtps": fString,
	"cert_file": fString, "key_file": fString,
	"allow_non_loopback": fBool,
	"status":             fString,
	"log_format":         fString,
	"log_level":          fString,
	"agent":              fBool,
}

var accountFields = map[string]fieldKind{
	"provider": fString, "email": fString, "mailbox": fString,
	"client_id": fString, "client_secret": fString, "client_secret_cmd": fString, "client_secret_expires": fString,
	"tenant": fString, "cloud": fString, "issuer": fString,
	"auth_url": fString, "token_url": fString, "device_url": fString, "revoke_url": fString, "introspect_url": fString,
	"scopes": fList,
	"imap":   fString, "pop3": fString, "smtp": fString,
	"protocols": fList,
	"ca_file":   fString, "flow": fString,
	"certificate_file": fString, "private_key_file": fString, "service_account_file": fString,
	"sasl": fString,
}

// secretFields never have their values shown.
var secretFields = map[string]bool{"client_secret": true, "client_secret_cmd": true}

func sortedKeys(m map[string]fieldKind) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// section is a table's values, by key.
type section struct {
	prefix []string
	at     pos
	vals   map[string]*item
}

func newSection(prefix ...string) *section {
	return &section{prefix: prefix, vals: map[string]*item{}}
}

func (s *section) field(key string) string {
	return fieldName(append(slices.Clone(s.prefix), key)...)
}

// pos returns where key is set, or where the table starts.
func (s *section) pos(key string) pos {
	if it := s.vals[key]; it != nil {
		return it.at
	}
	return s.at
}

type builder struct {
	file, dir string
	errs      Errors

	top      *section
	proxy    *section
	accounts []*section
}

func (b *builder) add(at pos, field, msg, hint string) {
	b.errs = append(b.errs, &Error{File: b.file, Line: at.line, Column: at.col, Field: field, Msg: msg, Hint: hint})
}

func (b *builder) build(data []byte) *Config {
	b.top, b.proxy = newSection(), newSection("proxy")
	doc, serr := parseDocument(data)
	if serr != nil {
		b.add(serr.at, "", serr.msg, "fix the TOML syntax (https://toml.io)")
		return nil
	}
	for _, h := range doc.headers {
		b.place(h.path, h.at, nil, h.array)
	}
	for _, it := range doc.items {
		b.place(it.path, it.at, it, false)
	}
	cfg := &Config{File: b.file, RefreshMargin: DefaultRefreshMargin, Proxy: DefaultProxy()}
	if d, ok := b.duration(b.top, "refresh_margin"); ok {
		cfg.RefreshMargin = d
	}
	b.buildProxy(&cfg.Proxy)
	for _, s := range b.accounts {
		cfg.Accounts = append(cfg.Accounts, b.buildAccount(s))
	}
	return cfg
}

// place files one header (v == nil) or key-value under the schema.
func (b *builder) place(path []string, at pos, v *item, array bool) {
	if array {
		b.add(at, fieldName(path...), "arrays of tables ([[…]]) are not part of the configuration", "write [accounts.NAME] tables")
		return
	}
	switch path[0] {
	case "refresh_margin":
		b.placeField(b.top, path, 0, at, v, topFields)
	case "proxy":
		if len(path) == 1 {
			if v != nil {
				b.typeError(at, "proxy", "a table", v.kind, "write a [proxy] table")
			}
			b.proxy.at = minPos(b.proxy.at, at)
			return
		}
		b.placeField(b.proxy, path, 1, at, v, proxyFields)
	case "accounts":
		if len(path) == 1 {
			if v != nil {
				b.typeError(at, "accounts", "a table", v.kind, "write [accounts.NAME] tables")
			}
			return
		}
		s := b.account(path[1], at)
		if len(path) == 2 {
			if v != nil {
				b.typeError(at, fieldName(s.prefix...), "a table", v.kind, "write an [accounts.NAME] table")
			}
			return
		}
		b.placeField(s, path, 2, at, v, accountFields)
	default:
		b.unknown(at, fieldName(path[0]), path[0], []string{"accounts", "proxy", "refresh_margin"})
	}
}

func (b *builder) placeField(s *section, path []string, i int, at pos, v *item, fields map[string]fieldKind) {
	key := path[i]
	field := fieldName(path[:i+1]...)
	fk, ok := fields[key]
	if !ok {
		b.unknown(at, field, key, sortedKeys(fields))
		return
	}
	if len(path) > i+1 || v == nil {
		b.typeError(at, field, fk.want(key), unstable.Table, fk.hint(key))
		return
	}
	s.vals[key] = v
}

func (fk fieldKind) want(key string) string {
	switch {
	case key == "refresh_margin":
		return `a duration string such as "5m"`
	case key == "client_secret_expires":
		return `a date string such as "2027-06-30"`
	case fk == fList:
		return "an array of strings"
	case fk == fBool:
		return "true or false"
	}
	return "a string"
}

func (fk fieldKind) hint(key string) string {
	switch {
	case key == "refresh_margin":
		return `write refresh_margin = "5m"`
	case key == "client_secret_expires":
		return `write client_secret_expires = "2027-06-30", the date the provider shows for the secret`
	case fk == fList:
		return "write " + key + ` = ["…", "…"]`
	case fk == fBool:
		return "write " + key + " = true or " + key + " = false"
	}
	return "write " + key + ` = "…"`
}

func (b *builder) typeError(at pos, field, want string, got unstable.Kind, hint string) {
	b.add(at, field, fmt.Sprintf("must be %s, not %s", want, kindName(got)), hint)
}

func (b *builder) unknown(at pos, field, key string, valid []string) {
	hint := "valid keys here: " + strings.Join(valid, ", ")
	if s := suggest(key, valid); s != "" {
		hint = "did you mean " + s + "?"
	}
	b.add(at, field, "unknown key", hint)
}

// account returns the section of account name, creating it (and checking
// the name) on first mention.
func (b *builder) account(name string, at pos) *section {
	for _, s := range b.accounts {
		if s.prefix[1] == name {
			s.at = minPos(s.at, at)
			return s
		}
	}
	s := newSection("accounts", name)
	s.at = at
	b.accounts = append(b.accounts, s)
	if err := CheckAccountName(name); err != nil {
		b.add(at, fieldName("accounts", name), err.Error(), "use letters, digits, '.', '_', '-' and '@', at most 64 characters, not starting with '.'")
	}
	return s
}

func minPos(a, b pos) pos {
	switch {
	case a.line == 0:
		return b
	case b.line == 0:
		return a
	case b.line < a.line || b.line == a.line && b.col < a.col:
		return b
	}
	return a
}

// MaxAccountName is the longest account name; names become file names.
const MaxAccountName = 64

// CheckAccountName reports whether name can name an account: 1 to 64 ASCII
// letters, digits, '.', '_', '-' or '@', not starting with '.', since
// account names also name files in the state directory.
func CheckAccountName(name string) error {
	if name == "" {
		return fmt.Errorf("account name is empty")
	}
	if len(name) > MaxAccountName {
		return fmt.Errorf("account name is longer than %d characters", MaxAccountName)
	}
	if name[0] == '.' {
		return fmt.Errorf("account name %q starts with '.'", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == '@') {
			return fmt.Errorf("account name %q has a character other than letters, digits, '.', '_', '-' and '@'", strings.ToValidUTF8(name, "?"))
		}
	}
	return nil
}

// str returns the string at key ("" if unset), recording a type error.
func (b *builder) str(s *section, key string) string {
	it := s.vals[key]
	if it == nil {
		return ""
	}
	if it.kind != unstable.String {
		if !it.bad {
			b.typeError(it.at, s.field(key), fString.want(key), it.kind, fString.hint(key))
			it.bad = true
		}
		return ""
	}
	return it.str
}

// list returns the strings at key (nil if unset), recording a type error.
func (b *builder) list(s *section, key string) ([]string, bool) {
	it := s.vals[key]
	if it == nil {
		return nil, false
	}
	if it.kind != unstable.Array {
		b.typeError(it.at, s.field(key), "an array of strings", it.kind, fList.hint(key))
		return nil, false
	}
	if it.badElem != unstable.Invalid {
		b.add(it.at, s.field(key), "must be an array of strings, but holds "+kindName(it.badElem), fList.hint(key))
		return nil, false
	}
	return it.list, true
}

func (b *builder) boolean(s *section, key string) bool {
	it := s.vals[key]
	if it == nil {
		return false
	}
	if it.kind != unstable.Bool {
		b.typeError(it.at, s.field(key), "true or false", it.kind, fBool.hint(key))
		return false
	}
	return it.b
}

func (b *builder) duration(s *section, key string) (time.Duration, bool) {
	it := s.vals[key]
	if it == nil {
		return 0, false
	}
	if it.kind != unstable.String {
		b.typeError(it.at, s.field(key), `a duration string such as "5m"`, it.kind, `write refresh_margin = "5m"`)
		return 0, false
	}
	d, err := time.ParseDuration(it.str)
	if err != nil {
		b.add(it.at, s.field(key), fmt.Sprintf("invalid duration %q", it.str), `write a duration such as "5m" or "90s"`)
		return 0, false
	}
	if d <= 0 || d >= maxRefreshMargin {
		b.add(it.at, s.field(key), fmt.Sprintf("duration %s is out of range", d), `write a duration between "1s" and "59m", such as "5m"`)
		return 0, false
	}
	return d, true
}

func (b *builder) buildProxy(p *Proxy) {
	s := b.proxy
	listeners := []struct {
		key string
		dst *string
		tls bool
	}{
		{"imap", &p.IMAP, false}, {"pop3", &p.POP3, false}, {"smtp", &p.SMTP, false},
		{"imaps", &p.IMAPS, true}, {"pop3s", &p.POP3S, true}, {"smtps", &p.SMTPS, true},
		{"status", &p.Status, false},
	}
	p.AllowNonLoopback = b.boolean(s, "allow_non_loopback")
	if s.vals["agent"] != nil {
		p.Agent = b.boolean(s, "agent")
	}
	for _, l := range listeners {
		if s.vals[l.key] == nil {
			continue
		}
		v := b.str(s, l.key)
		if s.vals[l.key].bad {
			continue
		}
		*l.dst = v
		if v == "" {
			continue
		}
		loopback, err := checkListenAddr(v)
		if err != nil {
			b.add(s.pos(l.key), s.field(l.key), err.Error(), `write HOST:PORT, such as "127.0.0.1:1143", or "" to turn the listener off`)
			continue
		}
		switch {
		case loopback:
		case l.key == "status" && !p.AllowNonLoopback:
			b.add(s.pos(l.key), s.field(l.key), "the status page listens beyond loopback", "bind it to 127.0.0.1, or set allow_non_loopback = true in [proxy]")
		case l.key != "status" && !l.tls:
			b.add(s.pos(l.key), s.field(l.key), "a listener beyond loopback must use TLS", fmt.Sprintf("bind %s to 127.0.0.1, or use %ss with allow_non_loopback = true", l.key, l.key))
		case l.tls && !p.AllowNonLoopback:
			b.add(s.pos(l.key), s.field(l.key), "the listener is not on loopback", "bind it to 127.0.0.1, or set allow_non_loopback = true in [proxy]")
		}
	}
	if (s.vals["cert_file"] != nil) != (s.vals["key_file"] != nil) {
		missing := "key_file"
		if s.vals["cert_file"] == nil {
			missing = "cert_file"
		}
		b.add(s.at, s.field(missing), "missing: cert_file and key_file go together", "set both, or neither to use a generated certificate")
	}
	p.CertFile = b.path(s, "cert_file")
	p.KeyFile = b.path(s, "key_file")
	if p.CertFile != "" {
		b.checkPEM(s, "cert_file", p.CertFile, "CERTIFICATE")
	}
	if p.KeyFile != "" {
		b.checkReadable(s, "key_file", p.KeyFile)
	}
	if s.vals["log_format"] != nil {
		p.LogFormat = b.str(s, "log_format")
		if !s.vals["log_format"].bad && p.LogFormat != "text" && p.LogFormat != "json" {
			b.add(s.pos("log_format"), s.field("log_format"), fmt.Sprintf("unknown log format %q", p.LogFormat), `write "text" or "json"`)
		}
	}
	if s.vals["log_level"] != nil {
		p.LogLevel = b.str(s, "log_level")
		if !s.vals["log_level"].bad && !slices.Contains(LogLevels, p.LogLevel) {
			b.add(s.pos("log_level"), s.field("log_level"), fmt.Sprintf("unknown log level %q", p.LogLevel), `write "debug", "info", "warn" or "error"`)
		}
	}
}

// checkListenAddr checks HOST:PORT and says whether HOST is loopback. An
// empty host means every interface.
func checkListenAddr(addr string) (loopback bool, err error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return false, fmt.Errorf("listen address %q has no port", addr)
	}
	host, port := addr[:i], addr[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	} else if strings.Contains(host, ":") {
		return false, fmt.Errorf("listen address %q: put an IPv6 address in brackets", addr)
	}
	n := 0
	for _, c := range port {
		if c < '0' || c > '9' || n > 65535 {
			return false, fmt.Errorf("listen address %q: port must be a number from 0 to 65535", addr)
		}
		n = n*10 + int(c-'0')
	}
	if port == "" || n > 65535 {
		return false, fmt.Errorf("listen address %q: port must be a number from 0 to 65535", addr)
	}
	return provider.IsLoopbackHost(host), nil
}

// path returns the file path at key, absolute: relative paths are taken
// relative to the configuration file's directory and ~/ is the home
// directory.
func (b *builder) path(s *section, key string) string {
	p := b.str(s, key)
	if p == "" {
		return ""
	}
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(b.dir, p)
	}
	return filepath.Clean(p)
}

// checkReadable records an error unless path is a readable regular file.
// It returns the file's contents, nil on error.
func (b *builder) checkReadable(s *section, key, path string) []byte {
	data, err := readLimited(path)
	if err != nil {
		b.add(s.pos(key), s.field(key), fmt.Sprintf("cannot read %s: %s", path, describeFileErr(err)), "point "+key+" at a readable file")
		return nil
	}
	return data
}

// checkPEM checks that path holds at least one PEM block of the given type
// that parses as a certificate.
func (b *builder) checkPEM(s *section, key, path, blockType string) {
	data := b.checkReadable(s, key, path)
	if data == nil {
		return
	}
	found := false
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		if blk.Type != blockType {
			continue
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			b.add(s.pos(key), s.field(key), fmt.Sprintf("%s holds a certificate that does not parse", path), "point "+key+" at a PEM file of X.509 certificates")
			return
		}
		found = true
	}
	if !found {
		b.add(s.pos(key), s.field(key), fmt.Sprintf("%s holds no PEM certificate", path), "point "+key+" at a PEM file with BEGIN CERTIFICATE blocks")
	}
}
