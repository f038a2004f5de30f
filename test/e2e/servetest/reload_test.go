package servetest

import (
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/mailkey/mailkey/internal/audit"
	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// TestServeReload: SIGHUP makes serve re-read its configuration and app passwords. An added
// account is served, a removed one is refused, a broken file is refused with its file:line
// error while the configuration loaded before goes on serving, and an account with a problem
// of its own is left out without stopping the others. Each reload is an audit event.
func TestServeReload(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	auditFile := t.TempDir() + "/audit.jsonl"
	m := &mk{mailkeytest.New(t, leaks, "audit_file = '"+auditFile+"'\n")}
	m.addAccount(ctx, s, "work", e2e.Alice, e2e.AlicePassword)
	pws := map[string]string{"work": m.addPassword(ctx, "work", "clients")}
	srv := m.serve(ctx)
	login := func(tag, acct string) string {
		t.Helper()
		c := dialRaw(t, srv.addr["imap"])
		c.until("* OK")
		c.send(tag + " LOGIN " + acct + " " + pws[acct] + "\r\n")
		return c.until(tag + " ")
	}
	reloads := 0
	hup := func(want string) {
		t.Helper()
		reloads++
		before := strings.Count(srv.logs(), "msg=\"configuration ")
		if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		for strings.Count(srv.logs(), "msg=\"configuration ") == before {
			srv.waitLog(ctx, "msg=\"configuration ")
		}
		logs := srv.logs()
		last := logs[strings.LastIndex(logs, "msg=\"configuration "):]
		if !strings.Contains(last, want) {
			t.Errorf("after SIGHUP serve logged\n%s\nwant %q", last, want)
		}
	}
	if l := login("a", "work"); !strings.HasPrefix(l, "a OK") {
		t.Fatalf("work at the start: %q", l)
	}

	// Added: a new account and its app password.
	m.AddAccount(ctx, s, "home", e2e.ClientPublic, e2e.Bob)
	m.Import(ctx, s, "home", e2e.Bob, e2e.BobPassword)
	pws["home"] = m.addPassword(ctx, "home", "clients")
	hup(`msg="configuration reloaded"`)
	if !strings.Contains(srv.logs(), `added=home removed="" changed="" left_out=""`) {
		t.Errorf("the reload does not say home was added:\n%s", srv.logs())
	}
	if l := login("b", "home"); !strings.HasPrefix(l, "b OK") {
		t.Errorf("added account: %q", l)
	}

	// Removed.
	b, err := os.ReadFile(m.Config)
	if err != nil {
		t.Fatal(err)
	}
	good := regexp.MustCompile(`(?s)\[accounts\.work\].*?(\n\[|$)`).ReplaceAllString(string(b), "$1")
	if good == string(b) || !strings.Contains(good, "[accounts.home]") {
		t.Fatalf("could not remove work from\n%s", b)
	}
	writeFile(t, m.Config, good, 0o600)
	hup(`removed=work`)
	if l := login("c", "work"); !strings.HasPrefix(l, "c NO [AUTHENTICATIONFAILED]") {
		t.Errorf("removed account: %q", l)
	}
	if l := login("d", "home"); !strings.HasPrefix(l, "d OK") {
		t.Errorf("kept account after a removal: %q", l)
	}

	// A broken file: refused with its place, and the accounts loaded before are still served.
	writeFile(t, m.Config, good+"\n[accounts.lab\nprovider = \"generic\"\n", 0o600)
	hup(`msg="configuration refused: the one loaded before goes on serving" error="` + m.Config + `:`)
	if l := login("e", "home"); !strings.HasPrefix(l, "e OK") {
		t.Errorf("home after a broken file: %q", l)
	}

	// One broken account leaves only itself out.
	writeFile(t, m.Config, good+"\n[accounts.lab]\nprovider = \"no-such-provider\"\nemail = \"lab@example.test\"\n", 0o600)
	hup(`left_out=lab`)
	if !strings.Contains(srv.logs(), `msg="account left out: it cannot be served until its configuration is fixed" account=lab error="`+m.Config+`:`) {
		t.Errorf("the broken account's error is not logged with its place:\n%s", srv.logs())
	}
	if l := login("f", "home"); !strings.HasPrefix(l, "f OK") {
		t.Errorf("home beside a broken account: %q", l)
	}

	events, _, err := audit.Read(auditFile, audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		if e.Event == audit.ConfigReloaded || e.Event == audit.ConfigRefused {
			got = append(got, e.Event+": "+e.Detail)
		}
	}
	if len(got) != reloads || !strings.HasPrefix(got[0], "config-reloaded: added home") || !strings.HasPrefix(got[1], "config-reloaded: removed work") ||
		!strings.HasPrefix(got[2], "config-refused: "+m.Config+":") || !strings.HasPrefix(got[3], "config-reloaded: left out lab") {
		t.Errorf("audit events of the reloads:\n%s", strings.Join(got, "\n"))
	}
	m.Leaks.Output("mailkey serve", srv.logs())
}
