package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
)

// helperEnv makes the test binary act as a second process (see
// runHelper) instead of running tests.
const helperEnv = "MAILKEY_STORE_TEST_HELPER"

func TestMain(m *testing.M) {
	// Tests choose protections explicitly; the caller's environment must
	// not pick one for them.
	os.Unsetenv(EnvPassphrase)
	os.Unsetenv(EnvNoKeyring)
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(runHelper(h))
	}
	os.Exit(m.Run())
}

// testOpts keeps tests off the OS keyring and makes scrypt cheap.
func testOpts() *FileOptions {
	return &FileOptions{NoKeyring: true, ScryptWorkFactor: 10}
}

func openTest(t *testing.T, dir string, opts *FileOptions) *FileStore {
	t.Helper()
	if opts == nil {
		opts = testOpts()
	}
	s, err := OpenFile(dir, opts)
	if err != nil {
		t.Fatalf("OpenFile(%s): %v", dir, err)
	}
	return s
}

func stateDir(t *testing.T) string {
	return filepath.Join(t.TempDir(), "state")
}

func testRecord(account, token string) *Record {
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	return &Record{
		Account:      account,
		AccessToken:  "at-" + token,
		TokenType:    "Bearer",
		Expiry:       now.Add(time.Hour),
		RefreshToken: "rt-" + token,
		Scopes:       []string{"https://mail.google.com/"},
		TokenURL:     "https://127.0.0.1/token",
		Identity:     account + "@example.test",
		Created:      now,
		Updated:      now,
	}
}

func mustPut(t *testing.T, s *FileStore, rec *Record) {
	t.Helper()
	if err := s.Put(context.Background(), rec); err != nil {
		t.Fatalf("Put(%s): %v", rec.Account, err)
	}
}

func mustGet(t *testing.T, s *FileStore, account string) *Record {
	t.Helper()
	rec, err := s.Get(context.Background(), account)
	if err != nil {
		t.Fatalf("Get(%s): %v", account, err)
	}
	return rec
}

// encryptRaw encrypts arbitrary plaintext to the store's key, to plant
// records the store itself would never write.
func encryptRaw(t *testing.T, s *FileStore, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, s.recipient)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeRaw(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
}
