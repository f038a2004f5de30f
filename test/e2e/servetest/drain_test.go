package servetest

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// TestServeSeesRefreshThrough stops mailkey serve while the refresh it sent for a client's login
// is still unanswered. The provider has already rotated the refresh token, so serve must wait
// for the answer and store it before it exits; a second refresh afterwards proves the grant
// is intact (a spent refresh token would have made the provider revoke it).
func TestServeSeesRefreshThrough(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t, e2e.WithAccessTokenTTL(time.Hour))
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	m := &mk{mailkeytest.New(t, leaks, "")}
	const acct = "work"
	m.addAccount(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	pw := m.addPassword(ctx, acct, "clients")
	m.EditRecord(ctx, acct, mailkeytest.Expired)

	if _, err := s.TokenStats(true); err != nil {
		t.Fatal(err)
	}
	// Hold every answer of the token endpoint until the test lets it go.
	if err := s.DelayTokenEndpoint(time.Hour, -1, false); err != nil {
		t.Fatal(err)
	}
	srv := m.serve(ctx)
	c := dialRaw(t, srv.addr["imap"])
	c.until("* OK")
	c.send("a LOGIN " + acct + " " + pw + "\r\n") // needs a token: serve refreshes
	mailkeytest.WaitRefreshes(t, ctx, s, 1)

	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	srv.waitLog(ctx, "waiting for the provider to answer the token refresh of "+acct)
	if err := s.DelayTokenEndpoint(0, 0, false); err != nil {
		t.Fatal(err)
	}
	<-srv.eof // no second signal: that would force the exit
	srv.cmd.Wait()
	srv.stopped = true
	if code := srv.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("mailkey serve exited %d after SIGTERM", code)
	}
	if logs := srv.logs(); strings.Contains(logs, "was not saved") {
		t.Fatalf("mailkey serve lost the refresh:\n%s", logs)
	}

	// The answer is stored: the token is valid without a refresh, and the next refresh works.
	r := m.Run(ctx, "", "token", acct, "--wait", "0")
	if r.Code != 0 {
		t.Fatalf("token after serve stopped: %s", r)
	}
	m.Leaks.Secret("access token", strings.TrimSpace(r.Stdout))
	m.EditRecord(ctx, acct, mailkeytest.Expired)
	r = m.Run(ctx, "", "token", acct, "--wait", "0")
	if r.Code != 0 {
		t.Fatalf("refresh after serve stopped: %s", r)
	}
	m.Leaks.Secret("access token", strings.TrimSpace(r.Stdout))
	if st, err := s.TokenStats(false); err != nil || st["refresh_token.success"] != 2 || st["refresh_token.error.invalid_grant"] != 0 {
		t.Errorf("provider's refreshes: %v %v", st, err)
	}
}
