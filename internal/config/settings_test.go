package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestSettingsRoundTrip: an account's Settings, written into another
// configuration, load as the same account (what mailkey export and import
// rely on).
func TestSettingsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	ca := writeCert(t, dir, "ca.pem")
	src := writeFile(t, dir, "a.toml", dedent(`
		[accounts.work]
		provider = "microsoft"
		email = "me@contoso.com"
		mailbox = "shared@contoso.com"
		client_id = "id"
		client_secret = "s3cret"
		tenant = "contoso.onmicrosoft.com"
		scopes = ["offline_access", "https://outlook.office.com/IMAP.AccessAsUser.All"]
		imap = "imaps://outlook.office365.com:993"
		ca_file = "ca.pem"
		sasl = "xoauth2"
		protocols = ["imap"]
	`))
	cfg, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := cfg.Account("work")
	dst := filepath.Join(dir, "other", "b.toml")
	preview, err := PreviewAccount(dst, "work", a.Settings())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("PreviewAccount wrote %s", dst)
	}
	if err := AddAccount(dst, "work", a.Settings()); err != nil {
		t.Fatal(err)
	}
	cfg2, err := Load(dst)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := cfg2.Account("work")
	if !reflect.DeepEqual(a.Settings(), b.Settings()) || !reflect.DeepEqual(preview.Settings(), b.Settings()) {
		t.Errorf("settings differ:\n%v\n%v", a.Settings(), b.Settings())
	}
	if b.Mailbox != "shared@contoso.com" {
		t.Errorf("mailbox %q, want shared@contoso.com", b.Mailbox)
	}
	if b.CAFile != ca {
		t.Errorf("ca_file %q, want %q", b.CAFile, ca)
	}
}
