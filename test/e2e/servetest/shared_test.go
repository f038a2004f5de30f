package servetest

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// xoauth2Py logs in to an IMAP server over STARTTLS with the base64 XOAUTH2 initial response it
// reads from standard input (what mailkey token --sasl xoauth2 prints) and selects INBOX:
//
//	xoauth2.py HOST PORT CAFILE
//
// It prints "INBOX N" after a login, or "REFUSED" and the server's answer.
const xoauth2Py = `import base64, imaplib, ssl, sys

host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ir = base64.b64decode(sys.stdin.read().strip())
M = imaplib.IMAP4(host, port)
M.starttls(ssl_context=ssl.create_default_context(cafile=cafile))
try:
    M.authenticate('XOAUTH2', lambda challenge: b'' if challenge else ir)
except imaplib.IMAP4.error as e:
    print('REFUSED', e)
    sys.exit(0)
typ, data = M.select('INBOX')
assert typ == 'OK', data
print('INBOX', data[0].decode())
M.logout()
`

// A delegate opens a shared mailbox with their own token: the stack's Dovecot takes alice's
// token for e2e.Shared (she has Full Access) and refuses bob's, as Exchange does.
func TestSharedMailbox(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("", 3) // refresh tokens, access tokens and the app password
	m := &mk{mailkeytest.New(t, leaks, "")}

	// alice's own account, and the shared mailbox through her sign-in (a real login: the ID
	// token must name alice, the account's email).
	m.addAccount(ctx, s, "alice", e2e.Alice, e2e.AlicePassword)
	m.AddAccount(ctx, s, "shared", e2e.ClientPublic, e2e.Alice,
		"--mailbox", e2e.Shared, "--scope", "openid", "--scope", "email", "--scope", e2e.ScopeMail)
	if r := m.LoginAs(ctx, s, "shared", e2e.Alice, e2e.AlicePassword); r.Code != 0 {
		t.Fatalf("mailkey login shared as alice: %s", r)
	}
	// bob has no access to the shared mailbox.
	m.AddAccount(ctx, s, "bob-shared", e2e.ClientPublic, e2e.Bob,
		"--mailbox", e2e.Shared, "--scope", "openid", "--scope", "email", "--scope", e2e.ScopeMail)
	m.Import(ctx, s, "bob-shared", e2e.Bob, e2e.BobPassword)

	script := filepath.Join(t.TempDir(), "xoauth2.py")
	writeFile(t, script, xoauth2Py, 0o600)
	imapLogin := func(t *testing.T, acct string) string {
		t.Helper()
		r := m.Must(ctx, "", "token", acct, "--sasl", "xoauth2")
		ir := strings.TrimSpace(r.Stdout)
		leaks.Secret("SASL initial response", ir)
		cmd := pythonCmd(t, ctx, script, "127.0.0.1", strconv.Itoa(s.IMAPPort), s.CAFile)
		cmd.Stdin = strings.NewReader(ir + "\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("xoauth2.py: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}

	t.Run("token --sasl", func(t *testing.T) {
		var tj struct {
			Email   string `json:"email"`
			Mailbox string `json:"mailbox"`
			SASL    string `json:"sasl"`
		}
		r := m.Must(ctx, "", "token", "shared", "--sasl", "xoauth2", "--json")
		if err := json.Unmarshal([]byte(r.Stdout), &tj); err != nil {
			t.Fatalf("token --json: %v", err)
		}
		leaks.Secret("SASL initial response", tj.SASL)
		if tj.Email != e2e.Alice || tj.Mailbox != e2e.Shared {
			t.Errorf("token --json: email %q, mailbox %q; want %s and %s", tj.Email, tj.Mailbox, e2e.Alice, e2e.Shared)
		}
		if out := imapLogin(t, "shared"); !strings.HasPrefix(out, "INBOX ") {
			t.Errorf("IMAP login to the shared mailbox with alice's token: %s", out)
		}
		if out := imapLogin(t, "bob-shared"); !strings.HasPrefix(out, "REFUSED") {
			t.Errorf("IMAP login to the shared mailbox with bob's token: %s", out)
		}
	})

	t.Run("serve", func(t *testing.T) {
		pw := m.addPassword(ctx, "shared", "clients")
		ownPW := m.addPassword(ctx, "alice", "clients")
		srv := m.serve(ctx)
		clients := filepath.Join(t.TempDir(), "clients.py")
		writeFile(t, clients, clientsPy, 0o600)
		host, port, _ := strings.Cut(srv.addr["imap"], ":")
		login := func(user, password string) string {
			t.Helper()
			out, err := python(t, ctx, clients, "imap", "plain", "login", host, port, user, password, srv.certFile)
			if err != nil {
				t.Fatalf("clients.py imap as %s: %v\n%s", user, err, out)
			}
			return out
		}
		// The shared address and the account name both name the shared account; alice's
		// address stays her own account's.
		for _, user := range []string{e2e.Shared, "shared"} {
			if out := login(user, pw); !strings.HasPrefix(out, "INBOX ") {
				t.Errorf("LOGIN %s through serve: %q", user, out)
			}
		}
		if out := login(e2e.Alice, ownPW); !strings.HasPrefix(out, "INBOX ") {
			t.Errorf("LOGIN %s through serve: %q", e2e.Alice, out)
		}
		if out, err := python(t, ctx, clients, "imap", "plain", "login", host, port, e2e.Alice, pw, srv.certFile); err == nil {
			t.Errorf("the shared account's app password opened alice's own mailbox: %q", out)
		}
		if page := srv.get(t, "/"); !strings.Contains(page, e2e.Alice+", shared mailbox "+e2e.Shared) {
			t.Errorf("the status page does not show the shared mailbox:\n%s", page)
		}
		if !strings.Contains(srv.logs(), "account=shared") {
			t.Errorf("serve logged no login for account shared:\n%s", srv.logs())
		}
		srv.stop()
		leaks.Output("mailkey serve", srv.logs())
	})

	t.Run("test", func(t *testing.T) {
		r := m.Must(ctx, "", "test", "shared", "--imap")
		want := "signed in as " + e2e.Alice + ", opening shared mailbox " + e2e.Shared
		if !strings.Contains(r.Stdout, "shared ("+want+")") || !strings.Contains(r.Stdout, want+" with XOAUTH2") {
			t.Errorf("mailkey test shared does not say who signed in and which mailbox it opens:\n%s", r.Stdout)
		}
		r = m.Run(ctx, "", "test", "bob-shared", "--imap")
		if r.Code == 0 {
			t.Fatalf("mailkey test for bob's shared account passed:\n%s", r)
		}
		for _, w := range []string{
			e2e.Bob + " may lack Full Access to " + e2e.Shared,
			"Add-MailboxPermission -Identity " + e2e.Shared + " -User " + e2e.Bob + " -AccessRights FullAccess",
		} {
			if !strings.Contains(r.Stdout, w) {
				t.Errorf("mailkey test bob-shared lacks %q:\n%s", w, r.Stdout)
			}
		}
	})
}
