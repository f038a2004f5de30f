package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zalando/go-keyring"
)

func readProtection(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, protectionFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestKeyFileProtection(t *testing.T) {
	dir := stateDir(t)
	s := openTest(t, dir, nil)
	mustPut(t, s, testRecord("a", "x"))
	if got := readProtection(t, dir); got != "keyfile" {
		t.Errorf("protection file says %q", got)
	}
	if !strings.HasPrefix(s.Protection(), "key file ") || !strings.HasSuffix(s.Protection(), "/key.txt") {
		t.Errorf("Protection = %q", s.Protection())
	}
	// A passphrase given later does not make a second key.
	opts := testOpts()
	opts.Passphrase = "later"
	s2 := openTest(t, dir, opts)
	if s2.Protection() != s.Protection() || exists(filepath.Join(dir, wrappedKeyFile)) {
		t.Errorf("reopened with a passphrase: %q, key.age exists: %v", s2.Protection(), exists(filepath.Join(dir, wrappedKeyFile)))
	}
	mustGet(t, s2, "a")

	// A lost key file with records left is an error, not a new key.
	os.Remove(filepath.Join(dir, keyFile))
	_, err := OpenFile(dir, testOpts())
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("OpenFile without key.txt: %v, want ErrLocked", err)
	}
	if exists(filepath.Join(dir, keyFile)) {
		t.Error("a new key file was made for a store with records")
	}
}

func TestPassphraseProtection(t *testing.T) {
	dir := stateDir(t)
	t.Setenv(EnvPassphrase, "correct horse")
	s := openTest(t, dir, nil)
	if s.Protection() != "passphrase (MAILKEY_PASSPHRASE)" {
		t.Errorf("Protection = %q", s.Protection())
	}
	mustPut(t, s, testRecord("a", "x"))
	if got := readProtection(t, dir); got != "passphrase" {
		t.Errorf("protection file says %q", got)
	}
	if !exists(filepath.Join(dir, wrappedKeyFile)) || exists(filepath.Join(dir, keyFile)) {
		t.Error("want key.age and no key.txt")
	}

	// Without the passphrase: a clear error, and no key file appears.
	t.Setenv(EnvPassphrase, "")
	_, err := OpenFile(dir, testOpts())
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "set MAILKEY_PASSPHRASE") {
		t.Fatalf("OpenFile without the passphrase: %v", err)
	}
	if exists(filepath.Join(dir, keyFile)) {
		t.Error("opening without the passphrase made a key file")
	}

	// A wrong one says so.
	opts := testOpts()
	opts.Passphrase = "wrong horse"
	if _, err := OpenFile(dir, opts); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "wrong") {
		t.Fatalf("OpenFile with a wrong passphrase: %v", err)
	}

	// The option works as well as the environment.
	opts.Passphrase = "correct horse"
	if got := mustGet(t, openTest(t, dir, opts), "a").RefreshToken; got != "rt-x" {
		t.Errorf("Get = %q", got)
	}
}

// useMockKeyring swaps the OS keyring for go-keyring's in-memory mock and
// pretends a session bus exists.
func useMockKeyring(t *testing.T, err error) {
	if err != nil {
		keyring.MockInitWithError(err)
	} else {
		keyring.MockInit()
	}
	prev := sessionBusAvailable
	sessionBusAvailable = func() bool { return true }
	t.Cleanup(func() {
		sessionBusAvailable = prev
		keyring.MockInitWithError(errors.New("keyring used after its test"))
	})
}

func keyringOpts() *FileOptions {
	o := testOpts()
	o.NoKeyring = false
	return o
}

func TestKeyringProtection(t *testing.T) {
	useMockKeyring(t, nil)
	dir := stateDir(t)
	s := openTest(t, dir, keyringOpts())
	if s.Protection() != "OS keyring" {
		t.Fatalf("Protection = %q", s.Protection())
	}
	mustPut(t, s, testRecord("a", "x"))
	if got := readProtection(t, dir); got != "keyring" {
		t.Errorf("protection file says %q", got)
	}
	if exists(filepath.Join(dir, keyFile)) || exists(filepath.Join(dir, wrappedKeyFile)) {
		t.Error("a keyring store wrote a key file")
	}
	secret, err := keyring.Get(keyringService, keyringUser(s.Dir()))
	if err != nil || !strings.HasPrefix(secret, "AGE-SECRET-KEY-1") {
		t.Fatalf("keyring entry: %v", err)
	}
	if got := mustGet(t, openTest(t, dir, keyringOpts()), "a").RefreshToken; got != "rt-x" {
		t.Errorf("reopened: %q", got)
	}

	// Another folder gets another key.
	s2 := openTest(t, stateDir(t), keyringOpts())
	if s2.recipient.String() == s.recipient.String() {
		t.Error("two folders share one keyring key")
	}

	// Keyring switched off: locked, not a new key file.
	if _, err := OpenFile(dir, testOpts()); !errors.Is(err, ErrLocked) {
		t.Errorf("NoKeyring: %v, want ErrLocked", err)
	}
	t.Setenv(EnvNoKeyring, "1")
	if _, err := OpenFile(dir, keyringOpts()); !errors.Is(err, ErrLocked) {
		t.Errorf("%s=1: %v, want ErrLocked", EnvNoKeyring, err)
	}
	t.Setenv(EnvNoKeyring, "")
	if exists(filepath.Join(dir, keyFile)) {
		t.Error("a key file appeared")
	}

	// The keyring lost the key while records remain: locked.
	keyring.Delete(keyringService, keyringUser(s.Dir()))
	if _, err := OpenFile(dir, keyringOpts()); !errors.Is(err, ErrLocked) {
		t.Errorf("key gone from the keyring: %v, want ErrLocked", err)
	}
	if _, err := keyring.Get(keyringService, keyringUser(s.Dir())); !errors.Is(err, keyring.ErrNotFound) {
		t.Error("a new keyring key was made for a store with records")
	}
}

func TestKeyringAbsentFallsBack(t *testing.T) {
	t.Run("keyring errors", func(t *testing.T) {
		useMockKeyring(t, errors.New("org.freedesktop.DBus.Error.ServiceUnknown"))
		s := openTest(t, stateDir(t), keyringOpts())
		if !strings.HasPrefix(s.Protection(), "key file ") {
			t.Errorf("Protection = %q", s.Protection())
		}
	})
	t.Run("no session bus", func(t *testing.T) {
		useMockKeyring(t, nil)
		sessionBusAvailable = func() bool { return false }
		opts := keyringOpts()
		opts.Passphrase = "pw"
		s := openTest(t, stateDir(t), opts)
		if s.Protection() != "passphrase (MAILKEY_PASSPHRASE)" {
			t.Errorf("Protection = %q", s.Protection())
		}
	})
}

// TestEmptyStoreStartsOver: a store whose key is gone but which holds no
// records may make a new key; nothing is lost.
func TestEmptyStoreStartsOver(t *testing.T) {
	dir := stateDir(t)
	openTest(t, dir, nil)
	os.Remove(filepath.Join(dir, keyFile))
	s := openTest(t, dir, nil)
	mustPut(t, s, testRecord("a", "x"))
	mustGet(t, s, "a")
}

// TestMissingProtectionFile: a crash between making the key and recording
// the protection leaves a key file; the next opening uses it.
func TestMissingProtectionFile(t *testing.T) {
	dir := stateDir(t)
	s := openTest(t, dir, nil)
	mustPut(t, s, testRecord("a", "x"))
	os.Remove(filepath.Join(dir, protectionFile))
	s2 := openTest(t, dir, nil)
	mustGet(t, s2, "a")
	if got := readProtection(t, dir); got != "keyfile" {
		t.Errorf("protection file rewritten as %q", got)
	}
	// Records but no key anywhere: locked.
	os.Remove(filepath.Join(dir, protectionFile))
	os.Remove(filepath.Join(dir, keyFile))
	if _, err := OpenFile(dir, testOpts()); !errors.Is(err, ErrLocked) {
		t.Errorf("no key, no protection file, records: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, keyFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a new key was made")
	}
}
