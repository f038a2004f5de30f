package servetest

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// TestServeLocalFaults: a fault of mailkey's own data that no retry mends (a token record
// that cannot be read, an app password file that cannot be read) reaches the mail client as
// such, with what to run, and is logged as an error: not as a temporary failure that the
// client would retry for ever.
func TestServeLocalFaults(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	m := &mk{mailkeytest.New(t, leaks, "")}
	const acct = "work"
	m.addAccount(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	pw := m.addPassword(ctx, acct, "clients")
	srv := m.serve(ctx, "--log-level", "debug")

	login := func(tag string) string {
		t.Helper()
		c := dialRaw(t, srv.addr["imap"])
		c.until("* OK")
		c.send(tag + " LOGIN " + acct + " " + pw + "\r\n")
		return c.until(tag + " ")
	}
	if l := login("a"); !strings.HasPrefix(l, "a OK") {
		t.Fatalf("login before the faults: %q", l)
	}
	// --log-level debug tells each step of a login, and never a secret (leaks scans the log).
	srv.waitLog(ctx, "msg=\"upstream login\"")
	srv.waitLog(ctx, "msg=\"app password accepted\"")

	record := filepath.Join(m.State, "tokens", acct+".age")
	good, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(record, []byte("not an age file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if l, want := login("b"), "b NO [CONTACTADMIN] mailkey cannot read the stored token for work (run mailkey status work)"; l != want {
		t.Errorf("login with an unreadable token record:\n got %q\nwant %q", l, want)
	}
	srv.waitLog(ctx, "the account cannot be served until its stored data is fixed")
	if err := os.WriteFile(record, good, 0o600); err != nil {
		t.Fatal(err)
	}

	passwords := filepath.Join(m.State, "apppasswords.json")
	if err := os.WriteFile(passwords, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if l, want := login("c"), "c NO [CONTACTADMIN] mailkey cannot read its app password file (run mailkey status)"; l != want {
		t.Errorf("login with an unreadable app password file:\n got %q\nwant %q", l, want)
	}
	srv.waitLog(ctx, "app passwords cannot be checked until their file is fixed")
	m.Leaks.Output("mailkey serve --log-level debug", srv.logs())
}

// TestServeReadiness: /readyz answers ok while every account can log in; once the provider
// has revoked a grant and a login found out, it answers 503 naming the account and the command
// to run, /metrics says so too, and a new login clears both.
func TestServeReadiness(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	m := &mk{mailkeytest.New(t, leaks, "")}
	const acct = "work"
	m.addAccount(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	pw := m.addPassword(ctx, acct, "clients")
	srv := m.serve(ctx)
	readyz := func() (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + srv.addr["status"] + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	if code, body := readyz(); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("readyz with a good grant: %d %q", code, body)
	}

	if err := s.DropToken(m.StoredRecord(ctx, acct).RefreshToken); err != nil {
		t.Fatal(err)
	}
	m.EditRecord(ctx, acct, mailkeytest.Expired)
	c := dialRaw(t, srv.addr["imap"])
	c.until("* OK")
	c.send("a LOGIN " + acct + " " + pw + "\r\n")
	if l := c.until("a "); !strings.HasPrefix(l, "a NO ") || !strings.Contains(l, "run mailkey login work") {
		t.Fatalf("login with a revoked grant: %q", l)
	}
	if code, body := readyz(); code != http.StatusServiceUnavailable || body != "not ready\nwork: needs login (mailkey login work)\n" {
		t.Errorf("readyz with a revoked grant: %d %q", code, body)
	}
	if v := srv.metric(t, "mailkey_account_needs_person", `account="work"`); v != 1 {
		t.Errorf("mailkey_account_needs_person = %v with a revoked grant", v)
	}

	m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	if code, body := readyz(); code != http.StatusOK || body != "ok\n" {
		t.Errorf("readyz after a new login: %d %q", code, body)
	}
	if v := srv.metric(t, "mailkey_account_needs_person", `account="work"`); v != 0 {
		t.Errorf("mailkey_account_needs_person = %v after a new login", v)
	}
}
