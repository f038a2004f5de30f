package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/store"
)

// cliRun runs mailkey with args and returns its exit code, stdout and stderr.
func cliRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	waitRefreshers()
	return code, out.String(), errOut.String()
}

// cliEnv points mailkey at a fresh configuration and state folder with one
// account, work, and returns the state folder.
func cliEnv(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	t.Setenv("MAILKEY_CONFIG", filepath.Join(dir, "config.toml"))
	t.Setenv(store.EnvStateDir, state)
	t.Setenv(store.EnvNoKeyring, "1")
	t.Setenv(store.EnvPassphrase, "")
	t.Setenv("HOME", dir)
	if code, _, stderr := cliRun(t, "add", "work", "--provider", "google", "--email", "me@gmail.com", "--client-id", "x.apps.googleusercontent.com"); code != 0 {
		t.Fatalf("mailkey add: %s", stderr)
	}
	return state
}

func openState(t *testing.T, dir string) *store.FileStore {
	t.Helper()
	s, err := store.OpenFile(dir, &store.FileOptions{NoKeyring: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func putRecord(t *testing.T, s *store.FileStore, at, rt string, updated time.Time) {
	t.Helper()
	rec := &store.Record{Account: "work", AccessToken: at, RefreshToken: rt, Expiry: updated.Add(time.Hour), Updated: updated}
	if err := s.Put(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
}

func damageRecord(t *testing.T, state string) {
	t.Helper()
	p := filepath.Join(state, "tokens", "work.age")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-5] ^= 0xff
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptRecordHints pins the hint that destroyed grants: it told users
// to copy the backup over the record, but after a rotation the backup holds
// a spent refresh token. The backup is offered, as a command, only when it
// holds the record's refresh token; no hint says to copy files.
func TestCorruptRecordHints(t *testing.T) {
	state := cliEnv(t)
	s := openState(t, state)
	t0 := time.Now().Add(-time.Hour)
	putRecord(t, s, "at-secret-one", "rt-secret-one", t0)
	putRecord(t, s, "at-secret-two", "rt-secret-one", t0.Add(time.Minute)) // no rotation
	damageRecord(t, state)

	code, _, stderr := cliRun(t, "token", "work")
	if code == 0 || !strings.Contains(stderr, "mailkey: hint: restore the backup") || !strings.Contains(stderr, "mailkey login work --from-backup") {
		t.Errorf("token with a damaged record and a good backup: exit %d\n%s", code, stderr)
	}
	_, stdout, _ := cliRun(t, "status", "work")
	if !strings.Contains(stdout, "unreadable") || !strings.Contains(stdout, "next step:    restore the backup") {
		t.Errorf("status:\n%s", stdout)
	}
	code, _, stderr = cliRun(t, "login", "work", "--from-backup")
	if code != 0 || !strings.Contains(stderr, "restored from its backup") {
		t.Fatalf("login --from-backup: exit %d\n%s", code, stderr)
	}
	rec, err := s.Get(context.Background(), "work")
	if err != nil || rec.AccessToken != "at-secret-one" || rec.RefreshToken != "rt-secret-one" {
		t.Fatalf("after the restore: %v, %v", rec, err)
	}
	if code, _, stderr = cliRun(t, "login", "work", "--from-backup"); code != 0 || !strings.Contains(stderr, "reads fine") {
		t.Errorf("login --from-backup over a good record: exit %d\n%s", code, stderr)
	}

	// A rotation: the backup's refresh token is spent and never offered.
	putRecord(t, s, "at-secret-three", "rt-secret-three", t0.Add(2*time.Minute))
	damageRecord(t, state)
	var outs []string
	for _, args := range [][]string{{"token", "work"}, {"status", "work"}, {"login", "work", "--from-backup"}} {
		code, stdout, stderr := cliRun(t, args...)
		outs = append(outs, stdout+stderr)
		if args[0] != "status" && code == 0 {
			t.Errorf("%s with a spent backup: exit 0", args)
		}
		if !strings.Contains(stdout+stderr, "mailkey login work") || strings.Contains(stdout+stderr, "--from-backup") {
			t.Errorf("%s with a spent backup offers it, or no login:\n%s%s", args, stdout, stderr)
		}
	}
	for _, o := range outs {
		if strings.Contains(o, "cp ") || strings.Contains(o, "secret") {
			t.Errorf("output suggests copying files or shows a token:\n%s", o)
		}
	}
	if !strings.Contains(outs[0], "do not restore the backup: its refresh token is spent") {
		t.Errorf("token does not say the backup is spent:\n%s", outs[0])
	}
}

// TestStatusRecovered: a record adopted from an interrupted write says so.
func TestStatusRecovered(t *testing.T) {
	state := cliEnv(t)
	s := openState(t, state)
	t0 := time.Now().Add(-time.Hour)
	putRecord(t, s, "at-secret-one", "rt-secret-one", t0)

	// What a killed writer leaves: a complete record under a temp name.
	// Written by a second store that shares the key.
	other := filepath.Join(t.TempDir(), "state")
	os.MkdirAll(other, 0o700)
	for _, f := range []string{"key.txt", "protection"} {
		b, err := os.ReadFile(filepath.Join(state, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(other, f), b, 0o600)
	}
	putRecord(t, openState(t, other), "at-secret-two", "rt-secret-two", t0.Add(time.Minute))
	b, err := os.ReadFile(filepath.Join(other, "tokens", "work.age"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "tokens", ".work.age.tmp-1234"), b, 0o600); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := cliRun(t, "status", "work")
	if code != 0 || !strings.Contains(stdout, "recovered:    from an interrupted write") {
		t.Errorf("status: exit %d\n%s%s", code, stdout, stderr)
	}
	_, stdout, _ = cliRun(t, "status", "work", "--json")
	if !strings.Contains(stdout, `"recovered":`) || strings.Contains(stdout, "secret") {
		t.Errorf("status --json:\n%s", stdout)
	}
	if rec, err := s.Get(context.Background(), "work"); err != nil || rec.RefreshToken != "rt-secret-two" {
		t.Errorf("after the recovery: %v, %v", rec, err)
	}
	if m, _ := filepath.Glob(filepath.Join(state, "tokens", ".*.tmp-*")); len(m) != 0 {
		t.Errorf("left behind: %v", m)
	}
}
