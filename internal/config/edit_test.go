package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	toml "github.com/pelletier/go-toml/v2"
)

var googleKVs = []KV{
	{"provider", "google"},
	{"email", "me@example.com"},
	{"client_id", "cid"},
}

func TestAddAccountCreatesFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "mailkey")
	path := filepath.Join(dir, "config.toml")
	if err := AddAccount(path, "work", googleKVs); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	want := "[accounts.work]\nprovider = \"google\"\nemail = \"me@example.com\"\nclient_id = \"cid\"\n"
	if string(data) != want {
		t.Errorf("file =\n%s\nwant\n%s", data, want)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", st.Mode().Perm())
	}
	dst, _ := os.Stat(dir)
	if dst.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", dst.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "config.toml" && e.Name() != ".config.toml.lock" {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

// A refused add leaves nothing behind, not even the folder.
func TestAddAccountRefusedCreatesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mailkey")
	if err := AddAccount(filepath.Join(dir, "config.toml"), "work", []KV{{"provider", "google"}}); err == nil {
		t.Fatal("an account without email or client_id was accepted")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused add created %s: %v", dir, err)
	}
}

// TestAddAccountConcurrent: edits that overlap (several "mailkey add" at
// once) are serialized, so none is lost.
func TestAddAccountConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte("# mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const n = 12
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- AddAccount(path, fmt.Sprintf("acct%d", i), googleKVs)
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Accounts) != n {
		t.Errorf("%d accounts survived, want %d", len(cfg.Accounts), n)
	}
	if data, _ := os.ReadFile(path); !strings.HasPrefix(string(data), "# mine\n") {
		t.Errorf("the comment was lost:\n%s", data)
	}
}

// TestAddAccountPreservesFile: every byte outside the edited values stays.
func TestAddAccountPreservesFile(t *testing.T) {
	tests := []struct {
		name   string
		before string
		acct   string
		set    []KV
		after  string
	}{
		{
			name: "append a new account after comments",
			before: dedent(`
				# my mail
				refresh_margin = "2m"   # keep

				[accounts.home]   # personal
				provider = "fastmail"
				email = "h@fastmail.com"
				client_id = "f"
				# trailing comment
			`),
			acct: "work",
			set:  googleKVs,
			after: dedent(`
				# my mail
				refresh_margin = "2m"   # keep

				[accounts.home]   # personal
				provider = "fastmail"
				email = "h@fastmail.com"
				client_id = "f"
				# trailing comment

				[accounts.work]
				provider = "google"
				email = "me@example.com"
				client_id = "cid"
			`),
		},
		{
			name: "replace in place and insert at the end of the table",
			before: dedent(`
				[accounts.work]
				provider = "google"   # was set by hand
				email    = "old@example.com"  # old address
				  client_id = "cid"

				# about the proxy
				[proxy]
				imap = "127.0.0.1:1143"
			`),
			acct: "work",
			set:  []KV{{"email", "new@example.com"}, {"scopes", []string{"https://mail.google.com/"}}, {"ca_file", ""}},
			after: dedent(`
				[accounts.work]
				provider = "google"   # was set by hand
				email    = "new@example.com"  # old address
				  client_id = "cid"
				  scopes = ["https://mail.google.com/"]
				  ca_file = ""

				# about the proxy
				[proxy]
				imap = "127.0.0.1:1143"
			`),
		},
		{
			name: "replace a multi-line array",
			before: dedent(`
				[accounts.work]
				provider = "google"
				email = "me@example.com"
				client_id = "cid"
				protocols = [
				  "imap",   # reading
				  "smtp",
				] # end
				[accounts.other]
				provider = "google"
				email = "o@example.com"
				client_id = "cid"
			`),
			acct: "work",
			set:  []KV{{"protocols", []string{"imap"}}, {"sasl", "oauthbearer"}},
			after: dedent(`
				[accounts.work]
				provider = "google"
				email = "me@example.com"
				client_id = "cid"
				protocols = ["imap"] # end
				sasl = "oauthbearer"
				[accounts.other]
				provider = "google"
				email = "o@example.com"
				client_id = "cid"
			`),
		},
		{
			name: "quoted account name",
			before: dedent(`
				[accounts."me@example.com"]
				provider = "google"
				email = "me@example.com"
				client_id = "cid"
			`),
			acct: "me@example.com",
			set:  []KV{{"client_id", "new"}, {"imap", "imaps://imap.gmail.com:993"}},
			after: dedent(`
				[accounts."me@example.com"]
				provider = "google"
				email = "me@example.com"
				client_id = "new"
				imap = "imaps://imap.gmail.com:993"
			`),
		},
		{
			name:   "new quoted account",
			before: "",
			acct:   "a.b@c",
			set:    googleKVs,
			after:  "[accounts.\"a.b@c\"]\nprovider = \"google\"\nemail = \"me@example.com\"\nclient_id = \"cid\"\n",
		},
		{
			name: "dotted keys at the top level",
			before: dedent(`
				accounts.work.provider = "google" # p
				  accounts . work . email = "me@example.com"
				[proxy]
				imap = ""
			`),
			acct: "work",
			set:  []KV{{"provider", "google"}, {"client_id", "cid"}},
			after: dedent(`
				accounts.work.provider = "google" # p
				  accounts . work . email = "me@example.com"
				  accounts . work . client_id = "cid"
				[proxy]
				imap = ""
			`),
		},
		{
			name: "dotted keys in the accounts table",
			before: dedent(`
				[accounts]
				work.provider = "google"
				work.email = "me@example.com"
			`),
			acct: "work",
			set:  []KV{{"client_id", "cid"}},
			after: dedent(`
				[accounts]
				work.provider = "google"
				work.email = "me@example.com"
				work.client_id = "cid"
			`),
		},
		{
			name: "inline table",
			before: dedent(`
				[accounts]
				work = { provider = "google", email = "old@example.com" } # inline
			`),
			acct: "work",
			set:  []KV{{"email", "me@example.com"}, {"client_id", "cid"}},
			after: dedent(`
				[accounts]
				work = { provider = "google", email = "me@example.com", client_id = "cid" } # inline
			`),
		},
		{
			name:   "file without a final newline",
			before: "[accounts.work]\nprovider = \"google\"\nemail = \"me@example.com\"",
			acct:   "work",
			set:    []KV{{"client_id", "cid"}},
			after:  "[accounts.work]\nprovider = \"google\"\nemail = \"me@example.com\"\nclient_id = \"cid\"\n",
		},
		{
			name:   "CRLF line endings",
			before: "# c\r\n[accounts.work]\r\nprovider = \"google\"\r\nemail = \"me@example.com\"\r\n\r\n[proxy]\r\n",
			acct:   "work",
			set:    []KV{{"client_id", "cid"}},
			after:  "# c\r\n[accounts.work]\r\nprovider = \"google\"\r\nemail = \"me@example.com\"\r\nclient_id = \"cid\"\r\n\r\n[proxy]\r\n",
		},
		{
			name:   "empty table",
			before: "[accounts.work]\n\n[proxy]\n",
			acct:   "work",
			set:    googleKVs,
			after:  "[accounts.work]\nprovider = \"google\"\nemail = \"me@example.com\"\nclient_id = \"cid\"\n\n[proxy]\n",
		},
		{
			name:   "last setting of a key wins",
			before: "",
			acct:   "w",
			set:    append([]KV{{"email", "first@example.com"}}, googleKVs...),
			after:  "[accounts.w]\nemail = \"me@example.com\"\nprovider = \"google\"\nclient_id = \"cid\"\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.toml")
			if tt.before != "" {
				writeFile(t, filepath.Dir(path), "config.toml", tt.before)
			}
			if err := AddAccount(path, tt.acct, tt.set); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != tt.after {
				t.Errorf("file =\n%s\nwant\n%s", got, tt.after)
			}
		})
	}
}

func TestAddAccountEncodesValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	nasty := "a\"b\\c\nd\te\x01f\x7f ünï 🙂 '''\"\"\" # not a comment"
	scope := "a\"b\\c'''#ü]"
	set := append(slicesClone(googleKVs),
		KV{"client_secret", nasty},
		KV{"client_id", nasty},
		KV{"scopes", []string{scope, "x"}},
	)
	if err := AddAccount(path, "w", set); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Accounts[0]
	if a.ClientSecret != nasty || a.ClientID != nasty || !reflect.DeepEqual(a.Scopes, []string{scope, "x"}) {
		t.Errorf("round trip: secret %q id %q scopes %q", a.ClientSecret, a.ClientID, a.Scopes)
	}
}

func TestAddAccountFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	real := writeFile(t, dir, "real.toml", "# dotfiles\n")
	link := filepath.Join(dir, "config.toml")
	if err := os.Symlink(real, link); err != nil {
		t.Skip(err)
	}
	if err := AddAccount(link, "w", googleKVs); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
		t.Error("the symbolic link was replaced by a file")
	}
	data, _ := os.ReadFile(real)
	if !strings.HasPrefix(string(data), "# dotfiles\n\n[accounts.w]\n") {
		t.Errorf("target =\n%s", data)
	}
}

func TestAddAccountRefusesInvalidResult(t *testing.T) {
	dir := t.TempDir()
	before := "# keep me\n[accounts.work]\nprovider = \"google\"\nemail = \"me@example.com\"\nclient_id = \"cid\"\n"
	tests := []struct {
		name, acct string
		set        []KV
		field      string
		msg        string
	}{
		{"invalid email", "work", []KV{{"email", "nobody"}}, "accounts.work.email", "is not an email address"},
		{"invalid server", "work", []KV{{"imap", "ftp://x"}}, "accounts.work.imap", "not for imap"},
		{"incomplete new account", "other", []KV{{"provider", "google"}}, "accounts.other.email", "missing email"},
		{"unknown key", "work", []KV{{"emial", "x@y.z"}}, "accounts.work.emial", "unknown key"},
		{"wrong value type", "work", []KV{{"scopes", "x"}}, "accounts.work.scopes", "must be an array of strings"},
		{"unsupported value type", "work", []KV{{"email", 42}}, "accounts.work.email", "must be a string"},
		{"invalid name", "a/b", googleKVs, `accounts."a/b"`, "has a character other than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, "config.toml", before)
			err := AddAccount(path, tt.acct, tt.set)
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v, want Errors", err)
			}
			found := false
			for _, e := range errs {
				if e.Field == tt.field && strings.Contains(e.Msg, tt.msg) && e.File == path {
					found = true
				}
			}
			if !found {
				t.Errorf("want %s: %s; got %v", tt.field, tt.msg, err)
			}
			if data, _ := os.ReadFile(path); string(data) != before {
				t.Errorf("file changed:\n%s", data)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.Name() != "config.toml" && e.Name() != ".config.toml.lock" {
					t.Errorf("stray file: %s", e.Name())
				}
			}
		})
	}
}

func TestAddAccountRefusesBrokenFile(t *testing.T) {
	path := writeFile(t, t.TempDir(), "config.toml", "[accounts.work\n")
	err := AddAccount(path, "work", googleKVs)
	var e *Error
	if !errors.As(err, &e) || e.Line != 1 {
		t.Fatalf("err = %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "[accounts.work\n" {
		t.Errorf("file changed: %q", data)
	}
}

func TestAddAccountSecretNotInErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	const secret = "s3cr3t-in-error?"
	// Invalid because email is missing: the errors must not quote the secret.
	err := AddAccount(path, "w", []KV{{"provider", "google"}, {"client_id", "x"}, {"client_secret", secret}})
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("err = %v", err)
	}
	err = AddAccount(path, "w", []KV{{"client_secret", []string{secret}}})
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("err = %v", err)
	}
}

func TestTOMLString(t *testing.T) {
	for _, s := range []string{"", "plain", `"`, `\`, "\x00\x1f\x7f", "\u2028", "tab\tnl\ncr\r", "\xff\xfe"} {
		checkTOMLString(t, s)
	}
}

func checkTOMLString(t *testing.T, s string) {
	t.Helper()
	var m map[string]string
	doc := "k = " + tomlString(s)
	if err := toml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("tomlString(%q) = %s: %v", s, tomlString(s), err)
	}
	// Each invalid byte becomes one U+FFFD.
	want := ""
	for _, r := range s {
		want += string(r)
	}
	if m["k"] != want {
		t.Fatalf("tomlString(%q) decodes to %q", s, m["k"])
	}
}

func FuzzTOMLString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\\u0000", "\x00", "\xff", "🙂"} {
		f.Add(s)
	}
	f.Fuzz(checkTOMLString)
}

func slicesClone(kv []KV) []KV { return append([]KV(nil), kv...) }

// FuzzEditAccount: editing any valid document never panics, and when the
// result is valid TOML it holds the value that was set.
func FuzzEditAccount(f *testing.F) {
	f.Add([]byte("[accounts.work]\nemail = \"a@b.c\"\n"), "work", "x@y.z")
	f.Add([]byte("[accounts]\nwork = { email = \"a\" }\n"), "work", "v")
	f.Add([]byte("[accounts]\nwork = {}\n"), "work", "v")
	f.Add([]byte("accounts.work.provider = 'g'\n"), "work", "v\"")
	f.Add([]byte("[accounts.\"a.b\"]\r\nemail = [\n1]\r\n"), "a.b", "")
	f.Fuzz(func(t *testing.T, doc []byte, name, val string) {
		if CheckAccountName(name) != nil || !utf8Valid(val) {
			return
		}
		out, err := editAccount(doc, name, []KV{{"email", val}})
		if err != nil {
			return
		}
		var m map[string]any
		if toml.Unmarshal(out, &m) != nil {
			return
		}
		accts, _ := m["accounts"].(map[string]any)
		acct, _ := accts[name].(map[string]any)
		if got, _ := acct["email"].(string); got != val {
			t.Fatalf("email = %q, want %q in\n%s", got, val, out)
		}
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }
