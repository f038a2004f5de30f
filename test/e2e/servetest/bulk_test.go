package servetest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// TestBulkFetch fetches Carol's whole INBOX directly from Dovecot and through the proxy and
// compares a SHA-256 of every body: the relay must pass every byte untouched.
func TestBulkFetch(t *testing.T) {
	t.Parallel()
	n := 300
	if os.Getenv("MAILKEY_E2E_BULK") == "1" {
		n = 10000
	}
	s := e2e.Start(t, e2e.WithBulkMailbox(n))
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	m := &mk{mailkeytest.New(t, leaks, "")}
	const acct = "bulk"
	m.addAccount(ctx, s, acct, e2e.Carol, e2e.CarolPassword)
	pw := m.addPassword(ctx, acct, "bulk")
	srv := m.serve(ctx)
	script := filepath.Join(t.TempDir(), "bulk.py")
	writeFile(t, script, bulkPy, 0o600)

	host, port, _ := strings.Cut(srv.addr["imap"], ":")
	proxied, err := python(t, ctx, script, host, port, "proxy", acct, pw)
	if err != nil {
		t.Fatalf("through the proxy: %v\n%s", err, proxied)
	}
	direct, err := python(t, ctx, script, "127.0.0.1", strconv.Itoa(s.IMAPPort), "direct", e2e.Carol, m.Token(ctx, acct))
	if err != nil {
		t.Fatalf("direct: %v\n%s", err, direct)
	}
	if f := strings.Fields(direct); len(f) != 2 || f[0] != strconv.Itoa(n) {
		t.Fatalf("direct fetch: %q, want %d messages", direct, n)
	}
	if proxied != direct {
		t.Errorf("bodies differ: direct %q, through the proxy %q", strings.TrimSpace(direct), strings.TrimSpace(proxied))
	}
	if code := srv.stop(); code != 0 {
		t.Errorf("mailkey serve exited %d", code)
	}
	leaks.Output("mailkey serve's logs", srv.logs())
}
