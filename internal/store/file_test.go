package store

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/secperm"
)

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := stateDir(t)
	s := openTest(t, dir, nil)

	want := testRecord("work@example.com", "one")
	want.RefreshExpiry = want.Expiry.Add(7 * 24 * 3600e9)
	want.NeedsLogin, want.Reason = true, "invalid_grant"
	mustPut(t, s, want)
	mustPut(t, s, testRecord("home", "two"))

	if got := mustGet(t, s, "work@example.com"); !reflect.DeepEqual(got, want) {
		t.Errorf("Get = %+v\nwant %+v", got.Redacted(), want.Redacted())
	}
	names, err := s.List(ctx)
	if err != nil || !slices.Equal(names, []string{"home", "work@example.com"}) {
		t.Errorf("List = %v, %v", names, err)
	}

	// Folders 0700, files 0600.
	for _, p := range []string{dir, filepath.Join(dir, tokensDir)} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, %v; want 0700", p, fi.Mode(), err)
		}
	}
	for _, p := range []string{filepath.Join(dir, keyFile), s.recordPath("home")} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", p, fi.Mode(), err)
		}
	}
	// The file is ciphertext.
	raw, _ := os.ReadFile(s.recordPath("home"))
	if bytes.Contains(raw, []byte("rt-two")) || !bytes.HasPrefix(raw, []byte("age-encryption.org/v1\n")) {
		t.Errorf("record file is not an age file")
	}

	// A second opening uses the same key.
	s2 := openTest(t, dir, nil)
	if got := mustGet(t, s2, "home"); got.RefreshToken != "rt-two" {
		t.Errorf("reopened Get: refresh token %q", got.RefreshToken)
	}
	if want := "key file " + filepath.Join(s.Dir(), keyFile); s2.Protection() != want {
		t.Errorf("Protection = %q, want %q", s2.Protection(), want)
	}

	if err := s.Delete(ctx, "home"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "home"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "home"); err != nil {
		t.Errorf("Delete of a missing record: %v", err)
	}
	names, _ = s.List(ctx)
	if !slices.Equal(names, []string{"work@example.com"}) {
		t.Errorf("List after Delete = %v", names)
	}
	if _, err := os.Stat(s.recordPath("home") + backupExt); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Delete left the backup: %v", err)
	}
}

func TestAccountNames(t *testing.T) {
	s := openTest(t, stateDir(t), nil)
	ctx := context.Background()
	good := []string{"a", "work@example.com", "x_y-z.1", strings.Repeat("a", 64), "A9"}
	bad := []string{"", ".hidden", "../x", "a/b", "a b", "a\x00b", "ünï", strings.Repeat("a", 65), "a:b", `a\b`}
	for _, n := range good {
		if err := ValidateAccount(n); err != nil {
			t.Errorf("ValidateAccount(%q) = %v", n, err)
		}
	}
	for _, n := range bad {
		var ie *InvalidNameError
		if err := ValidateAccount(n); !errors.As(err, &ie) {
			t.Errorf("ValidateAccount(%q) = %v, want *InvalidNameError", n, err)
		}
		if _, err := s.Get(ctx, n); !errors.As(err, &ie) {
			t.Errorf("Get(%q) = %v, want *InvalidNameError", n, err)
		}
		if err := s.Put(ctx, &Record{Account: n}); !errors.As(err, &ie) {
			t.Errorf("Put(%q) = %v, want *InvalidNameError", n, err)
		}
		if _, err := s.Lock(ctx, n); !errors.As(err, &ie) {
			t.Errorf("Lock(%q) = %v, want *InvalidNameError", n, err)
		}
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv(EnvStateDir, "/srv/mk")
	t.Setenv("XDG_STATE_HOME", "/xdg")
	t.Setenv("HOME", "/home/u")
	if d, _ := DefaultDir(); d != "/srv/mk" {
		t.Errorf("with %s: %q", EnvStateDir, d)
	}
	t.Setenv(EnvStateDir, "")
	if d, _ := DefaultDir(); d != "/xdg/mailkey" {
		t.Errorf("with XDG_STATE_HOME: %q", d)
	}
	t.Setenv("XDG_STATE_HOME", "relative")
	if d, _ := DefaultDir(); d != "/home/u/.local/state/mailkey" {
		t.Errorf("with a relative XDG_STATE_HOME: %q", d)
	}
}

func TestPermissionsRefused(t *testing.T) {
	ctx := context.Background()

	t.Run("state folder", func(t *testing.T) {
		dir := stateDir(t)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, 0o755)
		_, err := OpenFile(dir, testOpts())
		var pe *PermissionError
		if !errors.As(err, &pe) || pe.Path != dir {
			t.Fatalf("OpenFile on a 0755 folder: %v, want *PermissionError for %s", err, dir)
		}
		if !strings.Contains(err.Error(), "chmod 700 "+dir) {
			t.Errorf("error %q lacks the chmod hint", err)
		}
	})

	t.Run("tokens folder", func(t *testing.T) {
		dir := stateDir(t)
		openTest(t, dir, nil)
		tok := filepath.Join(dir, tokensDir)
		os.Chmod(tok, 0o710)
		_, err := OpenFile(dir, testOpts())
		if !strings.Contains(err.Error(), "chmod 700 "+tok) {
			t.Errorf("OpenFile with a 0710 tokens folder: %v", err)
		}
	})

	t.Run("record file", func(t *testing.T) {
		s := openTest(t, stateDir(t), nil)
		mustPut(t, s, testRecord("a", "x"))
		p := s.recordPath("a")
		os.Chmod(p, 0o644)
		_, err := s.Get(ctx, "a")
		var pe *PermissionError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Fatalf("Get of a 0644 record: %v", err)
		}
		// Put does not quietly replace it either.
		if err := s.Put(ctx, testRecord("a", "y")); !errors.As(err, &pe) {
			t.Errorf("Put over a 0644 record: %v", err)
		}
	})

	t.Run("key file", func(t *testing.T) {
		dir := stateDir(t)
		openTest(t, dir, nil)
		p := filepath.Join(dir, keyFile)
		os.Chmod(p, 0o640)
		_, err := OpenFile(dir, testOpts())
		if !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Errorf("OpenFile with a 0640 key file: %v", err)
		}
	})
}

func TestPermissionHintQuotesPath(t *testing.T) {
	e := &PermissionError{Path: "/tmp/it's here", Mode: fs.ModeDir | 0o755}
	if want := `chmod 700 '/tmp/it'\''s here'`; !strings.HasSuffix(e.Error(), want) {
		t.Errorf("%q does not end in %q", e.Error(), want)
	}
}

// TestCorruptRecord: the backup of a record whose last write did not
// rotate the refresh token holds that same token, so it is offered and
// Recover restores it.
func TestCorruptRecord(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, stateDir(t), nil)
	first := testRecord("a", "first")
	mustPut(t, s, first)
	second := testRecord("a", "first")
	second.AccessToken, second.Updated = "at-second", first.Updated.Add(time.Hour)
	mustPut(t, s, second) // same refresh token: the backup (first) is still good
	path := s.recordPath("a")
	bak := path + backupExt

	// Damage the ciphertext of the current record.
	raw := damage(t, path)

	_, err := s.Get(ctx, "a")
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("Get of a damaged record: %v, want *CorruptError", err)
	}
	if ce.Account != "a" || ce.Path != path || ce.Backup != bak || ce.SpentBackup != "" {
		t.Errorf("CorruptError = %+v", ce)
	}
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "the backup at "+bak+" holds the same refresh token") {
		t.Errorf("message %q should name the file and the backup", msg)
	}

	// Put refuses to write over it, and leaves both files alone.
	bakBefore, _ := os.ReadFile(bak)
	if err := s.Put(ctx, testRecord("a", "third")); !errors.As(err, &ce) {
		t.Fatalf("Put over a damaged record: %v, want *CorruptError", err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, raw) {
		t.Error("Put changed the damaged record")
	}
	if now, _ := os.ReadFile(bak); !bytes.Equal(now, bakBefore) {
		t.Error("Put changed the backup")
	}

	// Recover restores the backup and keeps the damaged file.
	rec, err := s.Recover(ctx, "a")
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	got := mustGet(t, s, "a")
	if rec.RefreshToken != "rt-first" || got.RefreshToken != "rt-first" || got.AccessToken != "at-first" || got.SupersededBy != "" {
		t.Errorf("Recover gave %v, Get %v", rec, got)
	}
	aside := corruptCopies(t, s, "a")
	if len(aside) != 1 {
		t.Fatalf("corrupt copies = %v, want one", aside)
	}
	if kept, _ := os.ReadFile(aside[0]); !bytes.Equal(kept, raw) {
		t.Error("the damaged file was not kept as is")
	}
	// Recover on a readable record changes nothing.
	if rec, err := s.Recover(ctx, "a"); err != nil || rec.RefreshToken != "rt-first" {
		t.Errorf("Recover of a good record: %v, %v", rec, err)
	}
	// Put works again.
	mustPut(t, s, testRecord("a", "fourth"))
	if got := mustGet(t, s, "a").RefreshToken; got != "rt-fourth" {
		t.Errorf("after recovery Put/Get: %q", got)
	}
	// Delete forgets the moved-aside copy too.
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if left := corruptCopies(t, s, "a"); len(left) != 0 {
		t.Errorf("Delete left %v", left)
	}
}

// TestCorruptRecordSpentBackup pins the grant-destroying hint: after a
// write that rotated the refresh token, the backup holds the replaced one,
// which a provider with reuse detection answers by revoking the grant. It
// is never offered, and Recover does not restore it.
func TestCorruptRecordSpentBackup(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, stateDir(t), nil)
	mustPut(t, s, testRecord("a", "first"))
	mustPut(t, s, testRecord("a", "second")) // rotated: the backup's rt-first is spent
	path := s.recordPath("a")
	bak := path + backupExt
	raw := damage(t, path)
	bakBefore, _ := os.ReadFile(bak)

	_, err := s.Get(ctx, "a")
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Backup != "" || ce.SpentBackup != bak {
		t.Fatalf("Get: %v (%+v), want a *CorruptError with a spent backup", err, ce)
	}
	if msg := err.Error(); !strings.Contains(msg, "a rotation has replaced") || strings.Contains(msg, "can be restored") {
		t.Errorf("message %q should say the backup's refresh token is spent", msg)
	}
	if _, err := s.Recover(ctx, "a"); !errors.As(err, &ce) || ce.SpentBackup != bak {
		t.Fatalf("Recover with a spent backup: %v, want the *CorruptError", err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, raw) {
		t.Error("Recover changed the damaged record")
	}
	if now, _ := os.ReadFile(bak); !bytes.Equal(now, bakBefore) {
		t.Error("Recover changed the backup")
	}

	// A backup that does not say which token replaced it (as earlier
	// releases wrote it) is not offered either.
	old := testRecord("a", "second")
	plain, _ := encodeRecord(old)
	writeRaw(t, bak, encryptRaw(t, s, plain))
	if _, err := s.Get(ctx, "a"); !errors.As(err, &ce) || ce.Backup != "" || ce.SpentBackup != bak {
		t.Errorf("Get with a backup that does not say: %v", err)
	}

	// A login replaces the damaged record: it is moved aside, and the next
	// backup notes the new refresh token.
	if err := s.PutWithOptions(ctx, testRecord("a", "login"), &PutOptions{Replace: true}); err != nil {
		t.Fatal(err)
	}
	if b := readBackup(t, s, "a"); b.SupersededBy != refreshDigest("rt-login") || restorable(b) {
		t.Errorf("backup after the login: %v", b)
	}
}

// damage flips a byte of the ciphertext at path and returns the result.
func damage(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-5] ^= 0xff
	writeRaw(t, path, raw)
	return raw
}

func readBackup(t *testing.T, s *FileStore, account string) *Record {
	t.Helper()
	b, err := s.read(account, s.recordPath(account)+backupExt)
	if err != nil {
		t.Fatalf("read the backup: %v", err)
	}
	return b
}

func corruptCopies(t *testing.T, s *FileStore, account string) []string {
	t.Helper()
	m, err := filepath.Glob(s.recordPath(account) + corruptMarker + "*")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCorruptWithoutBackup(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, stateDir(t), nil)
	path := s.recordPath("a")
	writeRaw(t, path, []byte("not age at all\n"))

	_, err := s.Get(ctx, "a")
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Backup != "" || !strings.Contains(err.Error(), "no earlier good copy") {
		t.Fatalf("Get: %v", err)
	}
	if _, err := s.Recover(ctx, "a"); !errors.As(err, &ce) {
		t.Errorf("Recover without a backup: %v, want *CorruptError", err)
	}
	// Replace moves the bad file aside rather than destroying it.
	if err := s.PutWithOptions(ctx, testRecord("a", "new"), &PutOptions{Replace: true}); err != nil {
		t.Fatalf("PutWithOptions(Replace): %v", err)
	}
	if got := mustGet(t, s, "a").RefreshToken; got != "rt-new" {
		t.Errorf("after Replace: %q", got)
	}
	if aside := corruptCopies(t, s, "a"); len(aside) != 1 {
		t.Errorf("corrupt copies = %v, want one", aside)
	}
	// A damaged file is not taken for a good backup.
	if _, err := os.Stat(path + backupExt); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Replace made a backup of the damaged file: %v", err)
	}
}

func TestCorruptKinds(t *testing.T) {
	ctx := context.Background()
	dir := stateDir(t)
	s := openTest(t, dir, nil)
	other := openTest(t, stateDir(t), nil) // a store with another key

	cases := []struct {
		name  string
		data  []byte
		cause error
	}{
		{"other key", encryptRaw(t, other, []byte(`{"account":"a"}`)), ErrWrongKey},
		{"empty", nil, errMalformed},
		{"truncated", encryptRaw(t, s, []byte(`{"account":"a"}`))[:60], errMalformed},
		{"not json", encryptRaw(t, s, []byte(`{"account":`)), nil},
		{"other account", encryptRaw(t, s, []byte(`{"account":"b"}`)), nil},
		{"no account", encryptRaw(t, s, []byte(`null`)), nil},
	}
	for _, c := range cases {
		writeRaw(t, s.recordPath("a"), c.data)
		_, err := s.Get(ctx, "a")
		var ce *CorruptError
		if !errors.As(err, &ce) {
			t.Errorf("%s: %v, want *CorruptError", c.name, err)
			continue
		}
		if c.cause != nil && !errors.Is(err, c.cause) {
			t.Errorf("%s: cause %v, want %v", c.name, ce.Err, c.cause)
		}
	}
}

// TestOversizeRecord: a record file far larger than any the store writes
// is a *CorruptError, not read into memory.
func TestOversizeRecord(t *testing.T) {
	s := openTest(t, stateDir(t), nil)
	writeRaw(t, s.recordPath("a"), make([]byte, maxRecordSize+1))
	_, err := s.Get(context.Background(), "a")
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, secperm.ErrTooLarge) {
		t.Fatalf("Get of an oversize record: %v, want *CorruptError (too large)", err)
	}
}

func TestQuarantine(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, stateDir(t), nil)
	if _, err := s.Quarantine(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Quarantine of a missing record: %v", err)
	}
	writeRaw(t, s.recordPath("a"), []byte("junk"))
	p1, err := s.Quarantine(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	writeRaw(t, s.recordPath("a"), []byte("junk2"))
	p2, err := s.Quarantine(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	// Two in the same second do not overwrite each other.
	if p1 == p2 {
		t.Fatalf("both quarantined to %s", p1)
	}
	for p, want := range map[string]string{p1: "junk", p2: "junk2"} {
		if b, _ := os.ReadFile(p); string(b) != want {
			t.Errorf("%s holds %q, want %q", p, b, want)
		}
	}
	if names, _ := s.List(ctx); len(names) != 0 {
		t.Errorf("List after Quarantine = %v", names)
	}
	// Deleting account "a" spares an account whose name merely starts
	// like a's quarantined files.
	lookalike := "a.age.corrupt-20250101T000000Z"
	mustPut(t, s, testRecord(lookalike, "x"))
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, lookalike)
	if left := corruptCopies(t, s, "a"); len(left) != 1 || !strings.HasSuffix(left[0], ".age") {
		t.Errorf("after Delete: %v", left)
	}
}

// TestInterruptedWrite pins that a write stopped between writing the new
// file and renaming it leaves the previous record readable.
func TestInterruptedWrite(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, stateDir(t), nil)
	mustPut(t, s, testRecord("a", "first"))

	boom := errors.New("interrupted")
	beforeRename = func() error { return boom }
	err := s.Put(ctx, testRecord("a", "second"))
	beforeRename = nil
	if !errors.Is(err, boom) {
		t.Fatalf("Put = %v, want the hook's error", err)
	}
	if got := mustGet(t, s, "a").RefreshToken; got != "rt-first" {
		t.Errorf("after an interrupted Put: %q", got)
	}
	entries, _ := os.ReadDir(filepath.Join(s.Dir(), tokensDir))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temp file left behind: %s", e.Name())
		}
	}
}

// TestLockReadModifyWrite has goroutines increment a counter kept in a
// record; without mutual exclusion updates would be lost.
func TestLockReadModifyWrite(t *testing.T) {
	ctx := context.Background()
	dir := stateDir(t)
	s1 := openTest(t, dir, nil)
	s2 := openTest(t, dir, nil) // a second store: only the file lock orders them
	mustPut(t, s1, &Record{Account: "n", AccessToken: "0"})

	const workers, rounds = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		s := s1
		if w%2 == 1 {
			s = s2
		}
		wg.Go(func() {
			for range rounds {
				unlock, err := s.Lock(ctx, "n")
				if err != nil {
					errs <- err
					return
				}
				rec, err := s.Get(ctx, "n")
				if err == nil {
					n, _ := strconv.Atoi(rec.AccessToken)
					rec.AccessToken = strconv.Itoa(n + 1)
					err = s.Put(ctx, rec)
				}
				unlock()
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := mustGet(t, s1, "n").AccessToken; got != strconv.Itoa(workers*rounds) {
		t.Errorf("counter = %s, want %d", got, workers*rounds)
	}
}

func TestLockCancelled(t *testing.T) {
	dir := stateDir(t)
	s1 := openTest(t, dir, nil)
	s2 := openTest(t, dir, nil)
	unlock, err := s1.Lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Same store: waits on the in-process queue.
	if _, err := s1.Lock(ctx, "a"); !errors.Is(err, context.Canceled) {
		t.Errorf("same store: %v, want context.Canceled", err)
	}
	// Other store: waits on the file lock until the deadline. (A
	// cancelled context could win the in-process queue's select at
	// random and never reach the file lock.)
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	if _, err := s2.Lock(short, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("other store: %v, want context.DeadlineExceeded", err)
	}
	// Other accounts are not held up.
	u2, err := s2.Lock(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	u2()
	u2() // harmless twice
}

// TestConcurrentCreate opens one new store from several goroutines at once:
// they must settle on one key.
func TestConcurrentCreate(t *testing.T) {
	dir := stateDir(t)
	const n = 6
	keys := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := OpenFile(dir, testOpts())
			if err == nil {
				keys[i] = s.recipient.String()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("open %d: %v", i, errs[i])
		}
		if keys[i] != keys[0] {
			t.Fatalf("open %d got key %s, open 0 got %s", i, keys[i], keys[0])
		}
	}
}
