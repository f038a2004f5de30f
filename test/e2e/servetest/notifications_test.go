package servetest

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/internal/testwait"
	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// TestServeNotifications: revoking a grant at the provider makes notify_command run once with
// needs-login, however often serve looks at the account meanwhile, and /readyz report it; a new
// login clears /readyz and runs the command once more, with recovered. The command's
// environment names the account, its address, the event and the message, and holds no secret.
func TestServeNotifications(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	dir := t.TempDir()
	events := filepath.Join(dir, "events")
	config := "[proxy]\nnotify_command = '''" +
		`echo "$MAILKEY_EVENT $MAILKEY_ACCOUNT" >> ` + events + `; env > ` + filepath.Join(dir, "env-") + `"$MAILKEY_EVENT"` +
		"'''\n"
	m := &mk{mailkeytest.New(t, leaks, config)}
	const acct = "work"
	m.addAccount(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	pw := m.addPassword(ctx, acct, "clients")
	srv := m.serve(ctx, "--log-level", "debug")
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
	read := func() string {
		b, err := os.ReadFile(events)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return string(b)
	}
	login := func(tag string) string {
		t.Helper()
		c := dialRaw(t, srv.addr["imap"])
		c.until("* OK")
		c.send(tag + " LOGIN " + acct + " " + pw + "\r\n")
		return c.until(tag + " ")
	}
	if code, body := readyz(); code != http.StatusOK {
		t.Fatalf("readyz with a good grant: %d %q", code, body)
	}

	if err := s.DropToken(m.StoredRecord(ctx, acct).RefreshToken); err != nil {
		t.Fatal(err)
	}
	m.EditRecord(ctx, acct, mailkeytest.Expired)
	if l := login("a"); !strings.Contains(l, "run mailkey login work") {
		t.Fatalf("login with a revoked grant: %q", l)
	}
	testwait.WaitFor(t, "notify_command to run with needs-login", func() bool { return read() != "" })
	if code, body := readyz(); code != http.StatusServiceUnavailable || body != "not ready\nwork: needs login (mailkey login work)\n" {
		t.Errorf("readyz with a revoked grant: %d %q", code, body)
	}
	// Another failed login makes serve look at the account again: no second needs-login.
	looks := strings.Count(srv.logs(), "account needs a login")
	login("b")
	testwait.WaitFor(t, "serve to look at the account again", func() bool {
		return strings.Count(srv.logs(), "account needs a login") > looks
	})

	m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	testwait.WaitFor(t, "notify_command to run with recovered", func() bool { return strings.Contains(read(), "recovered") })
	if got, want := read(), "needs-login work\nrecovered work\n"; got != want {
		t.Errorf("notify_command ran for\n%s\nwant\n%s", got, want)
	}
	if code, body := readyz(); code != http.StatusOK || body != "ok\n" {
		t.Errorf("readyz after a new login: %d %q", code, body)
	}

	env, err := os.ReadFile(filepath.Join(dir, "env-needs-login"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MAILKEY_ACCOUNT=work\n", "MAILKEY_EMAIL=" + e2e.Alice + "\n", "MAILKEY_EVENT=needs-login\n",
		"MAILKEY_MESSAGE=work: needs a login, its mail clients cannot log in until then (run mailkey login work)\n"} {
		if !strings.Contains(string(env), want) {
			t.Errorf("notify_command's environment lacks %q", strings.TrimSpace(want))
		}
	}
	m.Leaks.Output("notify_command's environment", string(env))
	m.Leaks.Output("mailkey serve --log-level debug", srv.logs())
}
