package migrate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/store"
)

// The first line of an age file (https://age-encryption.org/v1), binary or
// armored.
const (
	ageHeader      = "age-encryption.org/v1\n"
	ageArmorHeader = armor.Header
)

// bundleFormat names the document inside a bundle, so that an age file of
// something else is told from it.
const (
	bundleFormat  = "mailkey-export"
	bundleVersion = 1
)

// BundleAccount is one account of a bundle: its settings, as the
// configuration holds them, and its token record.
type BundleAccount struct {
	Name     string
	Settings []config.KV
	Record   *store.Record
}

type bundleDoc struct {
	Format   string          `json:"format"`
	Version  int             `json:"version"`
	Created  time.Time       `json:"created"`
	Accounts []bundleAccount `json:"accounts"`
}

type bundleAccount struct {
	Name     string          `json:"name"`
	Settings []bundleSetting `json:"settings"`
	Record   *store.Record   `json:"record,omitempty"`
}

type bundleSetting struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// WriteBundle writes accounts to w as mailkey export does: a JSON document,
// encrypted with age to recipients (an X25519 or hybrid key, or a
// passphrase's scrypt recipient) and armored, so that it may be pasted.
func WriteBundle(w io.Writer, accounts []BundleAccount, now time.Time, recipients ...age.Recipient) error {
	doc := bundleDoc{Format: bundleFormat, Version: bundleVersion, Created: now.UTC()}
	for _, a := range accounts {
		ba := bundleAccount{Name: a.Name, Record: a.Record}
		for _, kv := range a.Settings {
			ba.Settings = append(ba.Settings, bundleSetting{Key: kv.Key, Value: kv.Value})
		}
		doc.Accounts = append(doc.Accounts, ba)
	}
	plain, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	aw := armor.NewWriter(w)
	ew, err := age.Encrypt(aw, recipients...)
	if err != nil {
		return err
	}
	if _, err := ew.Write(plain); err != nil {
		return err
	}
	if err := ew.Close(); err != nil {
		return err
	}
	return aw.Close()
}

// BundleNeedsPassphrase reports whether the bundle in data was encrypted
// with a passphrase (age's scrypt recipient) rather than to a key.
func BundleNeedsPassphrase(data []byte) (bool, error) {
	r, err := ageReader(data)
	if err != nil {
		return false, err
	}
	header, err := age.ExtractHeader(r)
	if err != nil {
		return false, &CorruptError{Format: Bundle, Reason: "its age header cannot be read"}
	}
	sc := bufio.NewScanner(bytes.NewReader(header))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "-> scrypt ") {
			return true, nil
		}
	}
	return false, nil
}

func ageReader(data []byte) (io.Reader, error) {
	t := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case bytes.HasPrefix(t, []byte(ageArmorHeader)):
		return armor.NewReader(bytes.NewReader(t)), nil
	case bytes.HasPrefix(t, []byte(ageHeader)):
		return bytes.NewReader(t), nil
	}
	return nil, &CorruptError{Format: Bundle, Reason: "it is not an age file"}
}

// readBundle opens a bundle with identities and returns its accounts (those
// called names, when names is not empty).
func readBundle(data []byte, identities []age.Identity, names []string) ([]*Grant, error) {
	r, err := ageReader(data)
	if err != nil {
		return nil, err
	}
	dr, err := age.Decrypt(r, identities...)
	if err != nil {
		if errors.As(err, new(*age.NoIdentityMatchError)) {
			return nil, ErrWrongPassphrase
		}
		return nil, &CorruptError{Format: Bundle, Reason: "its age header cannot be read"}
	}
	plain, err := io.ReadAll(io.LimitReader(dr, maxFileSize+1))
	if err != nil {
		// age authenticates every chunk: a changed or cut file fails here.
		return nil, &CorruptError{Format: Bundle, Reason: "it was changed or cut short after it was written"}
	}
	if len(plain) > maxFileSize {
		return nil, &CorruptError{Format: Bundle, Reason: "it is too large"}
	}
	var doc bundleDoc
	if err := json.Unmarshal(plain, &doc); err != nil || doc.Format != bundleFormat {
		return nil, &CorruptError{Format: Bundle, Reason: "it holds no mailkey export"}
	}
	if doc.Version != bundleVersion {
		return nil, &CorruptError{Format: Bundle, Reason: fmt.Sprintf("it is of version %d, which this mailkey does not read", doc.Version)}
	}
	var known []string
	for _, a := range doc.Accounts {
		known = append(known, a.Name)
	}
	for _, n := range names {
		if !slices.Contains(known, n) {
			return nil, &NotInFileError{Format: Bundle, Account: n, Known: known}
		}
	}
	var grants []*Grant
	for _, a := range doc.Accounts {
		if len(names) > 0 && !slices.Contains(names, a.Name) {
			continue
		}
		g := &Grant{Name: a.Name, Record: a.Record}
		for _, s := range a.Settings {
			v, ok := settingValue(s.Value)
			if !ok {
				return nil, &CorruptError{Format: Bundle, Reason: fmt.Sprintf("setting %s of account %s has the wrong type", s.Key, a.Name)}
			}
			g.Settings = append(g.Settings, config.KV{Key: s.Key, Value: v})
		}
		if a.Record == nil || a.Record.RefreshToken == "" && a.Record.AccessToken == "" {
			g.check("the export holds no tokens for this account: it needs a login")
		} else {
			g.AccessToken, g.Expiry = a.Record.AccessToken, a.Record.Expiry
			g.RefreshToken, g.Scopes = a.Record.RefreshToken, a.Record.Scopes
		}
		g.Mapped = append(g.Mapped, fmt.Sprintf("%d settings as the exporting configuration held them", len(g.Settings)))
		for _, kv := range g.Settings {
			switch kv.Key {
			case "client_secret_cmd":
				g.check("client_secret_cmd runs on this machine now: check that the command works here", "client_secret_cmd", "client_secret")
			case "ca_file", "certificate_file", "private_key_file", "service_account_file":
				g.check(fmt.Sprintf("%s names a file of the exporting machine (%v): copy it here, or name another", kv.Key, kv.Value), kv.Key)
			}
		}
		grants = append(grants, g)
	}
	return grants, nil
}

// settingValue converts a setting decoded from JSON back to the types
// config.KV takes: a string, a bool or a []string.
func settingValue(v any) (any, bool) {
	switch v := v.(type) {
	case string, bool:
		return v, true
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out[i] = s
		}
		return out, true
	}
	return nil, false
}
