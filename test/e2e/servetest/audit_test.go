package servetest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/audit"
	"github.com/mailkey/mailkey/internal/testwait"
	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// TestServeAudit: an app password used, refused and rate-limited, a login, a refreshed grant
// and a logout each leave one event in the audit file, with the source and the label where
// there are some, from serve and from the commands beside it; mailkey audit shows them, and
// neither the file nor its output holds the app password or a token.
func TestServeAudit(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "audit.jsonl")
	m := &mk{mailkeytest.New(t, leaks, "audit_file = '"+file+"'\n")}
	const acct = "work"
	m.addAccount(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	pw := m.addPassword(ctx, acct, "scanner")
	srv := m.serve(ctx)
	login := func(tag, user, pass string) string {
		t.Helper()
		c := dialRaw(t, srv.addr["imap"])
		c.until("* OK")
		c.send(tag + " LOGIN " + user + " " + pass + "\r\n")
		return c.until(tag + " ")
	}
	if l := login("a", acct, pw); !strings.HasPrefix(l, "a OK") {
		t.Fatalf("login with the app password: %q", l)
	}
	// Ten wrong passwords, then the eleventh try is refused unchecked.
	for i := range 11 {
		login("b", acct, "wrong-password-"+string(rune('a'+i)))
	}
	// A due token is refreshed by serve's refresher.
	m.EditRecord(ctx, acct, mailkeytest.Due)
	read := func() []audit.Event {
		events, skipped, err := audit.Read(file, audit.Filter{})
		if err != nil || skipped > 0 {
			t.Fatalf("audit file: %v, %d lines skipped", err, skipped)
		}
		return events
	}
	count := func(kind string) int {
		n := 0
		for _, e := range read() {
			if e.Event == kind {
				n++
			}
		}
		return n
	}
	testwait.WaitFor(t, "serve to record the rate-limited login and the refresh", func() bool {
		return count(audit.AppPasswordRateLimited) == 1 && count(audit.GrantRefreshed) == 1
	})
	m.Must(ctx, "", "logout", acct)

	var used, failed int
	for _, e := range read() {
		switch e.Event {
		case audit.AppPasswordUsed:
			used++
			if e.Account != acct || e.Label != "scanner" || !strings.HasPrefix(e.Source, "127.0.0.1:") || e.Protocol != "imap" || e.Process != "serve" {
				t.Errorf("app-password-used event %+v", e)
			}
		case audit.AppPasswordFailed:
			failed++
			if e.Login != acct || !strings.HasPrefix(e.Source, "127.0.0.1:") {
				t.Errorf("app-password-failed event %+v", e)
			}
		case audit.Logout:
			if e.Account != acct || e.Process != "logout" {
				t.Errorf("logout event %+v", e)
			}
		}
	}
	if used != 1 || failed != 10 || count(audit.Login) != 1 || count(audit.Logout) != 1 {
		t.Errorf("%d used, %d failed, %d logins, %d logouts; want 1, 10, 1, 1", used, failed, count(audit.Login), count(audit.Logout))
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file: %v, mode %v", err, fi.Mode())
	}

	r := m.Must(ctx, "", "audit", acct, "--since", "1h", "--json")
	var shown []audit.Event
	if err := json.Unmarshal([]byte(r.Stdout), &shown); err != nil {
		t.Fatal(err)
	}
	for _, e := range shown {
		if e.Account != acct || time.Since(e.Time) > time.Hour {
			t.Errorf("mailkey audit %s --since 1h shows %+v", acct, e)
		}
	}
	if len(shown) != count(audit.AppPasswordUsed)+count(audit.Login)+count(audit.Logout)+count(audit.GrantRefreshed) {
		t.Errorf("mailkey audit %s shows %d events", acct, len(shown))
	}
	text := m.Must(ctx, "", "audit").Stdout
	if !strings.Contains(text, "app-password-used  work  login=work  label=scanner  source=127.0.0.1:") ||
		!strings.Contains(text, "app-password-rate-limited  login=work  source=127.0.0.1:") {
		t.Errorf("mailkey audit:\n%s", text)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m.Leaks.Output("the audit file", string(b))
	m.Leaks.Output("mailkey audit", text)
	for _, secret := range []string{pw, strings.ReplaceAll(pw, "-", ""), "wrong-password-"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("the audit file holds a password %q", secret)
		}
	}
}
