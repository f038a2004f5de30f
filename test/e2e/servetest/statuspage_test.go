package servetest

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// TestStatusPageSignIn: after the grant is revoked at the provider, a person opens the status
// page in a real browser (headless Chromium), presses "Sign in again", signs in on the
// provider's page, and comes back to the page with a valid token; the proxy then logs in
// with it. A POST that the page did not send is refused. The page is photographed in each
// state: into $MAILKEY_SCREENSHOTS when set (docs/images for docs/serve.md), else a
// temporary folder.
func TestStatusPageSignIn(t *testing.T) {
	t.Parallel()
	chromium := mailkeytest.NeedProgram(t, "chromium", "chromium")
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	m := &mk{mailkeytest.New(t, leaks, "")}
	const acct = "work"
	m.addAccount(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	pw := m.addPassword(ctx, acct, "clients")
	// An app-only account whose client secret expires soon: the page warns of it.
	m.AddAccount(ctx, s, "daemon", e2e.ClientDaemon, e2e.Alice, "--flow", "client_credentials",
		"--client-secret", e2e.ClientDaemonSecret, "--scope", e2e.ScopeMail)
	conf, err := os.ReadFile(m.Config)
	if err != nil {
		t.Fatal(err)
	}
	expires := time.Now().AddDate(0, 0, 10).Format(time.DateOnly)
	conf = append(conf, []byte("client_secret_expires = \""+expires+"\"\n")...) // the last table is accounts.daemon
	if err := os.WriteFile(m.Config, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := m.serve(ctx)
	page := "http://" + srv.addr["status"] + "/"

	shots := os.Getenv("MAILKEY_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // the tests run as root, where Chromium's sandbox cannot start
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 800),
	)...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	shoot := func(name, sel string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			png, err := chromedp.Screenshot(chromedp.CSS(sel))(ctx, t)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name), png, 0o644)
		})
	}
	state := func(want string) string {
		t.Helper()
		got, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS("#account-work .state")))
		if err != nil {
			t.Fatalf("reading the account's state: %v", err)
		}
		if !strings.Contains(got, want) {
			t.Errorf("the page says %q, want %q", got, want)
		}
		return got
	}

	if err := chromedp.Do(browser, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS("#account-daemon")),
		shoot("status-fresh.png", "#account-work"), shoot("status-warning.png", "#account-daemon")); err != nil {
		t.Fatal(err)
	}
	state("valid until")
	if warning, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS("#account-daemon .warn"))); err != nil || !strings.Contains(warning, "client secret expires "+expires) {
		t.Errorf("daemon's warning: %q (%v)", warning, err)
	}

	// The grant dies at the provider; a client's login finds out.
	if err := s.DropToken(m.StoredRecord(ctx, acct).RefreshToken); err != nil {
		t.Fatal(err)
	}
	m.EditRecord(ctx, acct, mailkeytest.Expired)
	c := dialRaw(t, srv.addr["imap"])
	c.until("* OK")
	c.send("a LOGIN " + acct + " " + pw + "\r\n")
	if l := c.until("a "); !strings.HasPrefix(l, "a NO ") {
		t.Fatalf("login with a revoked grant: %q", l)
	}
	if err := chromedp.Do(browser, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#account-work button")),
		shoot("status-needs-login.png", "body")); err != nil {
		t.Fatal(err)
	}
	state("needs login")

	// Sign in again, from the page, through the provider's own pages.
	if err := chromedp.Do(browser,
		chromedp.Click(chromedp.CSS("#account-work button")),
		chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.SetValue(chromedp.CSS(`#login input[name="login"]`), e2e.Alice),
		chromedp.SetValue(chromedp.CSS(`#login input[name="password"]`), e2e.AlicePassword),
		chromedp.Submit(chromedp.CSS("#login")),
	); err != nil {
		t.Fatalf("signing in from the status page: %v", err)
	}
	// The provider asks for consent, unless it remembers it; either way the browser ends
	// back on the status page. Query actions follow the browser across page loads.
	if err := chromedp.Do(browser, chromedp.WaitVisible(chromedp.CSS("#consent, #account-work"))); err != nil {
		t.Fatalf("after the provider's sign-in page: %v", err)
	}
	if loc, err := chromedp.Run(browser, chromedp.Location()); err != nil {
		t.Fatal(err)
	} else if !strings.HasPrefix(loc, page) {
		if err := chromedp.Do(browser, chromedp.Submit(chromedp.CSS("#consent")), chromedp.WaitVisible(chromedp.CSS("#account-work"))); err != nil {
			t.Fatalf("consenting: %v", err)
		}
	}
	loc, err := chromedp.Run(browser, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if u, err := url.Parse(loc); err != nil || u.Host != srv.addr["status"] || u.RawQuery != "" {
		t.Errorf("the browser ended at %q, want the status page without the redirect's query", loc)
	}
	state("valid until")

	// The proxy logs in with the new grant.
	c = dialRaw(t, srv.addr["imap"])
	c.until("* OK")
	c.send("a LOGIN " + acct + " " + pw + "\r\n")
	if l := c.until("a "); !strings.HasPrefix(l, "a OK") {
		t.Fatalf("login after signing in again: %q", l)
	}
	c.send("b LOGOUT\r\n")

	// A POST that the page did not send: no CSRF token, or another site's.
	forged := url.Values{"account": {acct}}
	resp, err := http.PostForm(page+"login", forged)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a POST without the CSRF token: %d, want 403", resp.StatusCode)
	}
	if !strings.Contains(srv.logs(), "signed in from the status page") {
		t.Errorf("serve did not log the sign-in:\n%s", srv.logs())
	}
}
