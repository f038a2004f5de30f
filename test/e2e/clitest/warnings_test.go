package clitest

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// TestEarlyWarnings: deadlines that mailkey can see coming (a client secret whose expiry the
// user recorded, a client certificate's NotAfter) are announced by status and test while
// everything still works, with the date and what to do.
func TestEarlyWarnings(t *testing.T) {
	t.Parallel()
	cc := newCertClient(t) // its certificate expires in 24 hours
	s := e2e.Start(t, e2e.WithCertClientJWKS(cc.jwks))
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	m := newMailkey(t, leaks, "")

	m.AddAccount(ctx, s, "cert", e2e.ClientCert, e2e.Alice, "--flow", "client_credentials",
		"--certificate-file", cc.certFile, "--private-key-file", cc.keyFile, "--scope", e2e.ScopeMail)
	m.AddAccount(ctx, s, "daemon", e2e.ClientDaemon, e2e.Alice, "--flow", "client_credentials",
		"--client-secret", e2e.ClientDaemonSecret, "--scope", e2e.ScopeMail)
	// The secret's expiry, as the provider's console shows it, recorded by hand.
	expires := time.Now().AddDate(0, 0, 10).Format(time.DateOnly)
	conf, err := os.ReadFile(m.Config)
	if err != nil {
		t.Fatal(err)
	}
	if i := strings.LastIndex(string(conf), "[accounts."); i < 0 || !strings.HasPrefix(string(conf[i:]), "[accounts.daemon]") {
		t.Fatal("the config's last table is not accounts.daemon")
	}
	conf = append(conf, []byte("client_secret_expires = \""+expires+"\"\n")...) // the last table is accounts.daemon
	if err := os.WriteFile(m.Config, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	m.Must(ctx, "", "config", "check")

	cases := []struct{ acct, want string }{
		{"cert", "the client certificate " + cc.certFile + " (" + e2e.ClientCert + ") expires "},
		{"daemon", "the client secret expires " + expires + " (in 9d) (client_secret_expires); create a new client secret"},
	}
	for _, c := range cases {
		m.Token(ctx, c.acct) // the credentials still work
		st := m.status(ctx, c.acct)
		if len(st.Warnings) != 1 || !strings.HasPrefix(st.Warnings[0], c.want) {
			t.Errorf("status %s warnings %q, want one starting %q", c.acct, st.Warnings, c.want)
		}
		r := m.Must(ctx, "", "test", c.acct, "--imap")
		if !strings.Contains(r.Stdout, "! warning: "+c.want) || !strings.HasSuffix(r.Stdout, "\npassed\n") {
			t.Errorf("mailkey test %s:\n%s", c.acct, r.Stdout)
		}
		r = m.Must(ctx, "", "test", c.acct, "--imap", "--json")
		var rep struct {
			Passed   bool     `json:"passed"`
			Warnings []string `json:"warnings"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil || !rep.Passed || len(rep.Warnings) != 1 || !strings.HasPrefix(rep.Warnings[0], c.want) {
			t.Errorf("mailkey test %s --json: %v\n%s", c.acct, err, r.Stdout)
		}
	}
}
