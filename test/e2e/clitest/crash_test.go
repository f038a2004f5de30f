package clitest

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// kills is how many refreshes TestKilledRefresh kills: enough to land in every window of a
// refresh (before the request, while the provider holds its answer, while mailkey writes)
// a few times, few enough for CI.
const kills = 24

// TestKilledRefresh kills the process that refreshes for mailkey token (mailkey
// background-refresh) by SIGKILL at random points of refreshes against a
// provider that rotates refresh tokens and revokes the grant when a replaced one comes back.
// After each kill, the next command must adopt a complete record the killed write left (it
// may hold the only copy of the rotated refresh token) and leave no temporary file, and the
// grant must survive unless the kill fell after the provider rotated the token and before
// mailkey had its answer on disk, which no program can help.
func TestKilledRefresh(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t, e2e.WithAccessTokenTTL(time.Second), e2e.WithOPEnv("OP_DEBUG", "1"))
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("refresh token", 1)
	const acct = "work"
	m := newMailkey(t, leaks, "1s")
	m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
	m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	tokens := filepath.Join(m.State, "tokens")

	// The provider rotates at once and holds its answer back, so a kill often falls between
	// the rotation and mailkey's write.
	if err := s.DelayTokenEndpoint(80*time.Millisecond, -1, false); err != nil {
		t.Fatal(err)
	}
	defer s.DelayTokenEndpoint(0, 0, false)

	var recovered, incomplete, lost, survived int
	for i := range kills {
		// Let the stored token expire, so that a refresh is due.
		before := peek(t, m, filepath.Join(tokens, acct+".age"))
		if before == nil {
			t.Fatalf("kill %d: the record cannot be read before the kill", i)
		}
		sleepUntil(ctx, t, before.Expiry.Add(50*time.Millisecond))
		if _, err := s.TokenStats(true); err != nil {
			t.Fatal(err)
		}

		cmd := m.Command(ctx, "background-refresh", acct) // the process that refreshes for mailkey token
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		if i%3 == 2 {
			killOnTempFile(cmd.Process, tokens, done)
		} else {
			select {
			case <-time.After(time.Duration(rand.IntN(300)) * time.Millisecond):
				cmd.Process.Signal(syscall.SIGKILL)
			case <-done:
			}
		}
		<-done

		// What the kill left, read with a copy of the key (not by mailkey).
		var newest *store.Record
		for _, p := range temps(t, tokens) {
			rec := peek(t, m, p)
			if rec == nil {
				incomplete++
				continue
			}
			if rec.Updated.After(before.Updated) && (newest == nil || rec.Updated.After(newest.Updated)) {
				newest = rec
			}
		}

		st := m.crashStatus(ctx, acct)
		if left := temps(t, tokens); len(left) != 0 {
			t.Errorf("kill %d: mailkey status left %d temporary files", i, len(left))
		}
		after := peek(t, m, filepath.Join(tokens, acct+".age"))
		if after == nil {
			t.Fatalf("kill %d: the record cannot be read after mailkey status: %s", i, st.Detail)
		}
		if newest != nil {
			recovered++
			if st.Recovered.IsZero() || after.RefreshToken != newest.RefreshToken {
				t.Errorf("kill %d: a complete newer record was left, but mailkey status did not adopt it (recovered %v)", i, st.Recovered)
			}
		} else if !st.Recovered.IsZero() {
			t.Errorf("kill %d: mailkey status says recovered, but no complete newer record was left", i)
		}

		// The next refresh, run in the foreground (mailkey token would leave it to a
		// detached process that outlives this round).
		r := m.Run(ctx, "", "background-refresh", acct)
		if left := temps(t, tokens); len(left) != 0 {
			t.Errorf("kill %d: the next refresh left %d temporary files", i, len(left))
		}
		if r.Code == 0 && strings.Contains(r.Stdout, `"ok":true`) {
			survived++
			continue
		}
		// The grant may be lost only when the provider rotated the refresh token for the
		// killed process and the store holds no record written after its refresh began.
		// Read now, the count cannot miss a request the provider was still handling when
		// the process died; this mailkey token's own refresh failed, so every success
		// counted is the killed one's.
		stats, err := s.TokenStats(false)
		if err != nil {
			t.Fatal(err)
		}
		rotated := stats["refresh_token.success"] > 0
		if !rotated || !after.Updated.Equal(before.Updated) || !strings.Contains(r.Stdout, "mailkey login "+acct) {
			t.Fatalf("kill %d: the next refresh failed (rotated at the provider: %v, record rewritten: %v):\n%s",
				i, rotated, !after.Updated.Equal(before.Updated), r)
		}
		lost++
		m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	}
	t.Logf("%d kills: %d complete records recovered, %d incomplete temporary files removed, %d grants lost between the provider's answer and the write, %d refreshes survived",
		kills, recovered, incomplete, lost, survived)
}

// crashStatus is the part of mailkey status --json this test reads.
type crashStatus struct {
	State     string    `json:"state"`
	Detail    string    `json:"detail"`
	Recovered time.Time `json:"recovered"`
}

func (m *mk) crashStatus(ctx context.Context, name string) crashStatus {
	m.T.Helper()
	r := m.Must(ctx, "", "status", name, "--json")
	var doc struct {
		Accounts []crashStatus `json:"accounts"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil || len(doc.Accounts) != 1 {
		m.T.Fatalf("mailkey status %s --json: %v\n%s", name, err, r.Stdout)
	}
	return doc.Accounts[0]
}

// temps lists the temporary files in the tokens folder.
func temps(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// peek decrypts one record file of m's store in a scratch store that shares its key, so that
// reading it recovers nothing in m's. It returns nil when the file is not a whole record.
func peek(t *testing.T, m *mk, file string) *store.Record {
	t.Helper()
	scratch := filepath.Join(t.TempDir(), "state")
	if err := os.MkdirAll(filepath.Join(scratch, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"key.txt", "protection"} {
		copyFile(t, filepath.Join(m.State, f), filepath.Join(scratch, f))
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil // renamed or removed since it was listed
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(scratch, "tokens", "work.age"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenFile(scratch, &store.FileOptions{NoKeyring: true})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := st.Get(context.Background(), "work")
	if err != nil {
		return nil
	}
	m.Leaks.Secret("refresh token", rec.RefreshToken)
	m.Leaks.Secret("access token", rec.AccessToken)
	return rec
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// killOnTempFile kills p as soon as a temporary record appears in dir, to land in the
// write; it gives up when p has ended (done is closed).
func killOnTempFile(p *os.Process, dir string, done <-chan struct{}) {
	for {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".work.age.tmp-") {
				p.Signal(syscall.SIGKILL)
				return
			}
		}
		select {
		case <-done:
			return
		default:
		}
	}
}

func sleepUntil(ctx context.Context, t *testing.T, when time.Time) {
	t.Helper()
	select {
	case <-time.After(time.Until(when)):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
}

// damageRecord flips a byte of the account's record file, as a bad disk would.
func damageRecord(t *testing.T, m *mk, name string) {
	t.Helper()
	p := filepath.Join(m.State, "tokens", name+".age")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-5] ^= 0xff
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedRecord pins the hint that destroyed grants: for an unreadable record it said to
// copy the backup over it, but after a rotation the backup holds a replaced refresh token,
// and the provider revokes the grant when it sees one. The backup is offered only when its
// refresh token is still the live one, and then restoring it keeps the grant.
func TestDamagedRecord(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t, e2e.WithAccessTokenTTL(3*time.Second))
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("refresh token", 1)
	const acct = "work"
	m := newMailkey(t, leaks, "1s")
	m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
	m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)

	t.Run("backup spent by a rotation", func(t *testing.T) {
		waitExpiry(t, ctx, m, acct)
		m.Token(ctx, acct) // a refresh: the provider rotates, the backup's token is spent
		damageRecord(t, m, acct)
		for _, args := range [][]string{{"token", acct}, {"login", acct, "--from-backup"}} {
			r := m.Run(ctx, "", args...)
			if r.Code == 0 || !strings.Contains(r.Stderr, "mailkey: hint: ") || !strings.Contains(r.Stderr, "mailkey login "+acct) ||
				strings.Contains(r.Stderr, "--from-backup") || strings.Contains(r.Stderr, "cp ") {
				t.Errorf("mailkey %s with a damaged record and a spent backup: %s", strings.Join(args, " "), r)
			}
		}
		if st := m.status(ctx, acct); st.State != "unreadable" {
			t.Errorf("status: %+v", st)
		}
		// A login replaces the damaged record and keeps the file.
		m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
		if aside, _ := filepath.Glob(filepath.Join(m.State, "tokens", acct+".age.corrupt-*")); len(aside) != 1 {
			t.Errorf("the damaged record was not kept: %v", aside)
		}
		imapOK(t, ctx, s, m.Token(ctx, acct))
	})

	// A write that does not rotate (marking the account as needing a login after an
	// invalid_grant the stack made up) leaves a backup with the live refresh token.
	t.Run("backup holds the live refresh token", func(t *testing.T) {
		waitExpiry(t, ctx, m, acct)
		m.Token(ctx, acct)
		waitExpiry(t, ctx, m, acct)
		if err := s.FailTokenEndpointWith(1, 400, "invalid_grant"); err != nil {
			t.Fatal(err)
		}
		if r := m.Run(ctx, "", "token", acct); r.Code == 0 {
			t.Fatalf("token with a refused refresh: %s", r)
		}
		damageRecord(t, m, acct)
		r := m.Run(ctx, "", "token", acct)
		if r.Code == 0 || !strings.Contains(r.Stderr, "mailkey login "+acct+" --from-backup") || strings.Contains(r.Stderr, "cp ") {
			t.Fatalf("token with a damaged record and a good backup: %s", r)
		}
		m.Must(ctx, "", "login", acct, "--from-backup")
		// The restored refresh token is the live one: the provider refreshes it.
		imapOK(t, ctx, s, m.Token(ctx, acct))
		if st := m.status(ctx, acct); st.State != "valid" || !st.HasRefresh {
			t.Errorf("status after the restore: %+v", st)
		}
	})
}
