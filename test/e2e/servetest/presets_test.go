package servetest

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// TestServePresets: accounts of the google, microsoft and outlook presets, pointed at the
// stack's personalities of those providers with only their endpoints and servers overridden,
// log in (the ID token checked) and serve password-only IMAP and SMTP clients.
func TestServePresets(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("", 2) // the authorization codes and the app passwords
	m := &mk{mailkeytest.New(t, leaks, "")}
	presets := []string{"google", "microsoft", "outlook"}
	pw := map[string]string{}
	for _, p := range presets {
		m.Must(ctx, "", append([]string{"add", p, "--email", e2e.Alice}, s.PresetFlags(p)...)...)
		if r := m.LoginAs(ctx, s, p, e2e.Alice, e2e.AlicePassword); r.Code != 0 {
			t.Fatalf("mailkey login %s: %s", p, r)
		}
		pw[p] = m.addPassword(ctx, p, "clients")
	}

	srv := m.serve(ctx)
	for _, p := range presets {
		c := dialRaw(t, srv.addr["imap"])
		c.until("* OK")
		c.send("a LOGIN " + p + " " + pw[p] + "\r\n")
		if l := c.until("a "); !strings.HasPrefix(l, "a OK") {
			t.Errorf("%s: IMAP LOGIN through serve: %s", p, l)
		}
		c.send("b SELECT INBOX\r\n")
		if l := c.until("b "); !strings.HasPrefix(l, "b OK") {
			t.Errorf("%s: SELECT INBOX through serve: %s", p, l)
		}
		c.send("c LOGOUT\r\n")
		c.until("c OK")

		c = dialRaw(t, srv.addr["smtp"])
		c.until("220 ")
		c.send("EHLO client.example.test\r\n")
		c.until("250 ")
		c.send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+p+"\x00"+pw[p])) + "\r\n")
		if l := c.line(); !strings.HasPrefix(l, "235 ") {
			t.Errorf("%s: SMTP AUTH through serve: %s", p, l)
		}
		c.send("QUIT\r\n")
		c.until("221 ")
	}
	if t.Failed() {
		t.Logf("mailkey serve logs:\n%s", srv.logs())
	}
}
