package migrate

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/store"
)

// Secrets of the fixtures: no error may quote them.
const (
	testRefresh = "rt-SECRET-refresh"
	testAccess  = "at-SECRET-access"
	testPass    = "proxy-SECRET-password"
)

func noSecret(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range []string{testRefresh, testAccess, testPass} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q quotes a secret", err)
		}
	}
}

func TestFernetSpecVector(t *testing.T) {
	// From https://github.com/fernet/spec/blob/master/generate.json.
	key, _ := base64.URLEncoding.DecodeString("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")
	tok := "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA=="
	got, err := fernetOpen(key, tok)
	if err != nil || string(got) != "hello" {
		t.Fatalf("fernetOpen = %q, %v; want hello", got, err)
	}
	key[0] ^= 1
	if _, err := fernetOpen(key, tok); !errors.Is(err, errFernet) {
		t.Errorf("wrong key: %v, want errFernet", err)
	}
}

// fernetSeal is Python's Fernet.encrypt, for fixtures.
func fernetSeal(key []byte, msg string) string {
	iv := bytes.Repeat([]byte{7}, aes.BlockSize)
	n := aes.BlockSize - len(msg)%aes.BlockSize
	pt := append([]byte(msg), bytes.Repeat([]byte{byte(n)}, n)...)
	block, _ := aes.NewCipher(key[16:])
	ct := make([]byte, len(pt))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, pt)
	b := []byte{0x80}
	b = binary.BigEndian.AppendUint64(b, uint64(time.Now().Unix()))
	b = append(append(b, iv...), ct...)
	mac := hmac.New(sha256.New, key[:16])
	mac.Write(b)
	return base64.URLEncoding.EncodeToString(mac.Sum(b))
}

func TestMutt(t *testing.T) {
	file := `{"registration": "google", "authflow": "localhostauthcode", "email": "me@example.com",
		"access_token": "` + testAccess + `", "access_token_expiration": "2026-12-07T15:04:05.123456",
		"refresh_token": "` + testRefresh + `"}`
	f, gs, err := Read([]byte(file), Options{Location: time.UTC})
	if err != nil || f != Mutt || len(gs) != 1 {
		t.Fatalf("Read = %v, %d grants, %v", f, len(gs), err)
	}
	g := gs[0]
	if g.Name != "me@example.com" || g.AccessToken != testAccess || g.RefreshToken != testRefresh {
		t.Errorf("grant %s: tokens not taken", g.Name)
	}
	if want := time.Date(2026, 12, 7, 15, 4, 5, 123456000, time.UTC); !g.Expiry.Equal(want) {
		t.Errorf("expiry %v, want %v", g.Expiry, want)
	}
	if !hasSetting(g.Settings, "provider", "google") || !hasSetting(g.Settings, "email", "me@example.com") {
		t.Errorf("settings %v", g.Settings)
	}
	if !slices.ContainsFunc(g.Check, func(c Check) bool { return slices.Contains(c.Keys, "client_id") }) {
		t.Errorf("no check asks for the client ID: %v", g.Check)
	}

	for _, tc := range []struct {
		name, file string
		want       any
	}{
		{"not JSON", `{"registration": `, new(*CorruptError)},
		{"no refresh token", `{"registration": "google", "email": "me@example.com", "refresh_token": ""}`, new(*NoTokensError)},
		{"bad time", `{"registration": "x", "email": "a@b.c", "refresh_token": "` + testRefresh + `", "access_token_expiration": "soon"}`, new(*CorruptError)},
		{"not a token file", `{"hello": "world"}`, new(*CorruptError)},
	} {
		_, _, err := Read([]byte(tc.file), Options{})
		if err == nil || !errors.As(err, tc.want) {
			t.Errorf("%s: %v, want %T", tc.name, err, tc.want)
		}
		noSecret(t, err)
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		data string
		want Format
	}{
		{"{}", Mutt},
		{"[IMAP-1993]\n", EmailProxy},
		{"-----BEGIN PGP MESSAGE-----\n", Encrypted},
		{"\x85\x01\x0c", Encrypted},
		{"age-encryption.org/v1\n", Bundle},
		{"-----BEGIN AGE ENCRYPTED FILE-----\n", Bundle},
		{"hello", Unknown},
		{"", Unknown},
	} {
		if got := Detect([]byte(tc.data)); got != tc.want {
			t.Errorf("Detect(%q) = %v, want %v", tc.data, got, tc.want)
		}
	}
	if _, _, err := Read([]byte("hello"), Options{}); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("Read(hello): %v", err)
	}
	if _, _, err := Read([]byte("-----BEGIN PGP MESSAGE-----\n"), Options{}); !errors.Is(err, ErrEncrypted) {
		t.Errorf("Read(PGP): %v", err)
	}
}

// proxyConfig writes an emailproxy.config with one account whose tokens are
// encrypted as the proxy does, with iterations.
func proxyConfig(iterations int) string {
	salt := []byte("0123456789abcdef")
	key, _ := pbkdf2.Key(sha256.New, testPass, salt, iterations, 32)
	return fmt.Sprintf(`[Email OAuth 2.0 Proxy configuration file]
documentation = a sample
	that spans lines

[IMAP-1993]
server_address = imap.example.net
server_port = 993

[SMTP-1587]
server_address = smtp.example.net
server_port = 587
server_starttls = True

[me@example.net]
permission_url = https://id.example.net/authorize
token_url = https://id.example.net/token
oauth2_scope = openid mail
	offline_access
client_id = the-client
client_secret = the-secret
token_salt = %s
token_iterations = %d
access_token = %s
access_token_expiry = 1800000000
refresh_token = %s

[never.used@example.net]
token_url = https://id.example.net/token
client_id = the-client
`, base64.StdEncoding.EncodeToString(salt), iterations, fernetSeal(key, testAccess), fernetSeal(key, testRefresh))
}

func TestEmailProxy(t *testing.T) {
	pw := func(string) (string, error) { return testPass, nil }
	f, gs, err := Read([]byte(proxyConfig(1000)), Options{Password: pw})
	if err != nil || f != EmailProxy || len(gs) != 1 {
		t.Fatalf("Read = %v, %d grants, %v", f, len(gs), err)
	}
	g := gs[0]
	if g.Name != "me@example.net" || g.AccessToken != testAccess || g.RefreshToken != testRefresh || g.Expiry.Unix() != 1800000000 {
		t.Errorf("grant %s: tokens or expiry not taken (expiry %v)", g.Name, g.Expiry)
	}
	for _, want := range []config.KV{
		{Key: "provider", Value: "generic"}, {Key: "auth_url", Value: "https://id.example.net/authorize"},
		{Key: "token_url", Value: "https://id.example.net/token"}, {Key: "client_id", Value: "the-client"},
		{Key: "client_secret", Value: "the-secret"}, {Key: "imap", Value: "imaps://imap.example.net:993"},
		{Key: "smtp", Value: "smtp://smtp.example.net:587"},
	} {
		if !hasSetting(g.Settings, want.Key, want.Value.(string)) {
			t.Errorf("no setting %s = %v in %v", want.Key, want.Value, g.Settings)
		}
	}
	if !slices.Equal(g.Scopes, []string{"openid", "mail", "offline_access"}) {
		t.Errorf("scopes %q", g.Scopes)
	}

	wrong := func(string) (string, error) { return "not-it", nil }
	_, _, err = Read([]byte(proxyConfig(1000)), Options{Password: wrong})
	if !errors.Is(err, ErrWrongPassword) {
		t.Errorf("wrong password: %v", err)
	}
	noSecret(t, err)

	_, _, err = Read([]byte(proxyConfig(1000)), Options{Names: []string{"never.used@example.net"}, Password: pw})
	if !errors.As(err, new(*NoTokensError)) {
		t.Errorf("account without tokens: %v", err)
	}
	_, _, err = Read([]byte(proxyConfig(1000)), Options{Names: []string{"other@example.net"}, Password: pw})
	if !errors.As(err, new(*NotInFileError)) {
		t.Errorf("account not in the file: %v", err)
	}
	corrupt := strings.Replace(proxyConfig(1000), "token_salt = ", "token_salt = !!", 1)
	_, _, err = Read([]byte(corrupt), Options{Password: pw})
	if !errors.As(err, new(*CorruptError)) {
		t.Errorf("bad salt: %v", err)
	}
	noSecret(t, err)
}

// TestEmailProxyTenant pins that a Microsoft token_url maps to the preset
// and its tenant.
func TestEmailProxyTenant(t *testing.T) {
	file := strings.Replace(proxyConfig(1000), "https://id.example.net/token", "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token", 1)
	_, gs, err := Read([]byte(file), Options{Password: func(string) (string, error) { return testPass, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if !hasSetting(gs[0].Settings, "provider", "microsoft") || !hasSetting(gs[0].Settings, "tenant", "contoso.onmicrosoft.com") {
		t.Errorf("settings %v", gs[0].Settings)
	}
}

func TestBundleRoundTrip(t *testing.T) {
	rec := &store.Record{Account: "work", AccessToken: testAccess, RefreshToken: testRefresh, Expiry: time.Unix(1800000000, 0).UTC(), Scopes: []string{"mail"}}
	accts := []BundleAccount{{Name: "work", Settings: []config.KV{{Key: "provider", Value: "generic"}, {Key: "scopes", Value: []string{"openid", "mail"}}, {Key: "ca_file", Value: "/etc/ca.pem"}}, Record: rec}}

	pass, _ := age.NewScryptRecipient("bundle-passphrase")
	pass.SetWorkFactor(10)
	var buf bytes.Buffer
	if err := WriteBundle(&buf, accts, time.Now(), pass); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte(testRefresh)) {
		t.Fatal("the bundle holds the refresh token in clear")
	}
	ids := func(want string) func(bool) ([]age.Identity, error) {
		return func(passphrase bool) ([]age.Identity, error) {
			if !passphrase {
				return nil, errors.New("asked for a key, not a passphrase")
			}
			id, _ := age.NewScryptIdentity(want)
			return []age.Identity{id}, nil
		}
	}
	f, gs, err := Read(buf.Bytes(), Options{Identities: ids("bundle-passphrase")})
	if err != nil || f != Bundle || len(gs) != 1 {
		t.Fatalf("Read = %v, %d grants, %v", f, len(gs), err)
	}
	g := gs[0]
	if g.Record == nil || g.Record.RefreshToken != testRefresh || !g.Record.Expiry.Equal(rec.Expiry) {
		t.Errorf("record not carried")
	}
	if len(g.Settings) != 3 || !slices.Equal(g.Settings[1].Value.([]string), []string{"openid", "mail"}) {
		t.Errorf("settings %v", g.Settings)
	}
	if !slices.ContainsFunc(g.Check, func(c Check) bool { return slices.Contains(c.Keys, "ca_file") }) {
		t.Errorf("no check for the ca_file of the other machine: %v", g.Check)
	}

	if _, _, err := Read(buf.Bytes(), Options{Identities: ids("not it")}); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: %v", err)
	}
	cut := buf.Bytes()[:buf.Len()-80]
	_, _, err = Read(append(slices.Clone(cut), "\n-----END AGE ENCRYPTED FILE-----\n"...), Options{Identities: ids("bundle-passphrase")})
	if !errors.As(err, new(*CorruptError)) {
		t.Errorf("cut bundle: %v", err)
	}
	noSecret(t, err)

	key, _ := age.GenerateX25519Identity()
	buf.Reset()
	if err := WriteBundle(&buf, accts, time.Now(), key.Recipient()); err != nil {
		t.Fatal(err)
	}
	_, gs, err = Read(buf.Bytes(), Options{Identities: func(passphrase bool) ([]age.Identity, error) {
		if passphrase {
			return nil, errors.New("asked for a passphrase, not a key")
		}
		return []age.Identity{key}, nil
	}})
	if err != nil || gs[0].Record.RefreshToken != testRefresh {
		t.Errorf("bundle to a key: %v", err)
	}
}

func hasSetting(set []config.KV, key, value string) bool {
	return slices.ContainsFunc(set, func(kv config.KV) bool { return kv.Key == key && kv.Value == value })
}

// TestEmailProxyCacheStore: with --cache-store the tokens are in a file of
// their own, whose other keys the proxy ignores.
func TestEmailProxyCacheStore(t *testing.T) {
	var conf, cache strings.Builder
	cache.WriteString("[me@example.net]\nclient_id = not-this-one\n")
	for _, l := range strings.Split(proxyConfig(1000), "\n") {
		k, _, _ := strings.Cut(l, " = ")
		if slices.Contains(proxyCachedKeys, k) {
			cache.WriteString(l + "\n")
		} else {
			conf.WriteString(l + "\n")
		}
	}
	pw := func(string) (string, error) { return testPass, nil }
	if _, _, err := Read([]byte(conf.String()), Options{Password: pw}); !errors.As(err, new(*NoTokensError)) {
		t.Errorf("the configuration alone: %v, want no tokens", err)
	}
	_, gs, err := Read([]byte(conf.String()), Options{Password: pw, Cache: []byte(cache.String())})
	if err != nil || len(gs) != 1 {
		t.Fatalf("with the cache store: %v", err)
	}
	if gs[0].RefreshToken != testRefresh || !hasSetting(gs[0].Settings, "client_id", "the-client") {
		t.Errorf("tokens not taken from the cache store, or its client_id was: %v", gs[0].Settings)
	}
}
