package clitest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// runClient runs a mail client as m's user (its HOME, and mailkey on PATH) and hands its
// output to the leak check: mailkey's stderr reaches the client's.
func runClient(t *testing.T, ctx context.Context, m *mk, stdin []byte, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Dir = m.Vars, m.Home
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	m.Leaks.Output(filepath.Base(name)+" "+strings.Join(args, " "), string(out))
	return string(out), err
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// sendToAlice submits a message to alice's INBOX and waits until it is there, so that no
// message is still on its way when a later subtest counts them; it returns the count.
func sendToAlice(t *testing.T, ctx context.Context, s *e2e.Stack, m *mk, subject string) int {
	t.Helper()
	before, err := s.MessageCount(e2e.Alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if err := e2e.SubmissionSend(ctx, e2e.Loopback(s.SubmissionPort), e2e.Plain, nil, e2e.Alice,
		m.Token(ctx, "work"), e2e.XOAUTH2, e2e.Alice, e2e.NewMessage(e2e.Bob, e2e.Alice, subject, "hello")); err != nil {
		t.Fatal(err)
	}
	n, err := s.WaitMessageCount(ctx, e2e.Alice, "INBOX", before+1)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMailClients runs msmtp, mbsync, offlineimap, getmail and mutt with mailkey token as their
// OAuth token source, configured as docs/clients/{msmtp,mbsync,offlineimap,getmail,mutt}.md
// describe.
func TestMailClients(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("", 1)
	const acct = "work"
	m := newMailkey(t, leaks, "1s")
	m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
	m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)

	for _, mech := range []string{"xoauth2", "oauthbearer"} {
		t.Run("msmtp "+mech, func(t *testing.T) {
			msmtp := mailkeytest.NeedProgram(t, "msmtp", "msmtp")
			rc := filepath.Join(m.Home, ".msmtprc-"+mech)
			writeFile(t, rc, fmt.Sprintf(`defaults
tls on
tls_trust_file %s

account mailkey
host localhost
port %d
tls_starttls on
from %s
user %s
auth %s
passwordeval "mailkey token %s"

account default : mailkey
`, s.CAFile, s.SubmissionPort, e2e.Alice, e2e.Alice, mech, acct))
			before, err := s.MessageCount(e2e.Alice, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			msg := e2e.NewMessage(e2e.Alice, e2e.Alice, "msmtp "+mech, "sent by msmtp with a token from mailkey")
			if out, err := runClient(t, ctx, m, msg, msmtp, "-C", rc, e2e.Alice); err != nil {
				t.Fatalf("msmtp: %v\n%s", err, out)
			}
			if _, err := s.WaitMessageCount(ctx, e2e.Alice, "INBOX", before+1); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("mbsync", func(t *testing.T) {
		mbsync := mailkeytest.NeedProgram(t, "mbsync", "isync")
		// the Cyrus SASL XOAUTH2 plugin mbsync needs
		if plugins, _ := filepath.Glob("/usr/lib/*/sasl2/libkdexoauth2.so*"); len(plugins) == 0 {
			mailkeytest.Missing(t, "the SASL plugin libkdexoauth2", "libsasl2-modules-kdexoauth2")
		}
		want := sendToAlice(t, ctx, s, m, "for mbsync")
		local := filepath.Join(m.Home, "Mail")
		if err := os.MkdirAll(local, 0o700); err != nil {
			t.Fatal(err)
		}
		rc := filepath.Join(m.Home, ".mbsyncrc")
		// As docs/clients/mbsync.md writes it, but for Timeout: mbsync gives up on a server
		// that is silent for 20 s, which a busy machine can be; the test's deadline bounds it.
		writeFile(t, rc, fmt.Sprintf(`IMAPAccount mailkey
Host localhost
Port %d
User %s
PassCmd "mailkey token %s"
AuthMechs XOAUTH2
SSLType STARTTLS
CertificateFile %s
Timeout 0

IMAPStore mailkey-remote
Account mailkey

MaildirStore mailkey-local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel mailkey
Far :mailkey-remote:
Near :mailkey-local:
Patterns INBOX
Create Near
SyncState *
`, s.IMAPPort, e2e.Alice, acct, s.CAFile, local, local))
		if out, err := runClient(t, ctx, m, nil, mbsync, "-c", rc, "mailkey"); err != nil {
			t.Fatalf("mbsync: %v\n%s", err, out)
		}
		var got int
		for _, sub := range []string{"cur", "new"} {
			entries, err := os.ReadDir(filepath.Join(local, "INBOX", sub))
			if err != nil {
				t.Fatalf("mbsync made no local INBOX: %v", err)
			}
			got += len(entries)
		}
		if got < want {
			t.Errorf("mbsync copied %d messages, the server holds at least %d", got, want)
		}
	})

	t.Run("offlineimap", func(t *testing.T) {
		offlineimap := mailkeytest.NeedProgram(t, "offlineimap", "offlineimap3")
		want := sendToAlice(t, ctx, s, m, "for offlineimap")
		// As docs/clients/offlineimap.md writes them, with the stack's server and CA.
		writeFile(t, filepath.Join(m.Home, ".offlineimap.py"), `import subprocess


def mailkey_token(account):
    """Return a valid access token for a mailkey account."""
    # stdout only: mailkey's error and hint on stderr reach the terminal or log.
    return subprocess.run(
        ["mailkey", "token", account],
        check=True, stdout=subprocess.PIPE, text=True,
    ).stdout.strip()
`)
		local := filepath.Join(m.Home, "Mail-offlineimap")
		rc := filepath.Join(m.Home, ".offlineimaprc")
		writeFile(t, rc, fmt.Sprintf(`[general]
accounts = mailkey
pythonfile = ~/.offlineimap.py

[Account mailkey]
localrepository = mailkey-local
remoterepository = mailkey-remote

[Repository mailkey-local]
type = Maildir
localfolders = %s

[Repository mailkey-remote]
type = IMAP
remotehost = localhost
remoteport = %d
remoteuser = %s
ssl = yes
sslcacertfile = %s
auth_mechanisms = XOAUTH2
oauth2_access_token_eval = mailkey_token(%q)
folderfilter = lambda f: f == 'INBOX'
`, local, s.IMAPSPort, e2e.Alice, s.CAFile, acct))
		if out, err := runClient(t, ctx, m, nil, offlineimap, "-c", rc, "-o", "-u", "basic"); err != nil {
			t.Fatalf("offlineimap: %v\n%s", err, m.Leaks.Redact(out))
		}
		var got int
		for _, sub := range []string{"cur", "new"} {
			entries, err := os.ReadDir(filepath.Join(local, "INBOX", sub))
			if err != nil {
				t.Fatalf("offlineimap made no local INBOX: %v", err)
			}
			got += len(entries)
		}
		if got < want {
			t.Errorf("offlineimap copied %d messages, the server holds at least %d", got, want)
		}
	})

	t.Run("getmail", func(t *testing.T) {
		getmail := mailkeytest.NeedProgram(t, "getmail", "getmail6")
		want := sendToAlice(t, ctx, s, m, "for getmail")
		// The retriever as docs/clients/getmail.md writes it, with the stack's server and CA.
		// getmail refuses to deliver to a Maildir as root, which the tests run as, so the
		// messages go to an external command that appends them to a file instead.
		dir := filepath.Join(m.Home, ".config", "getmail")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		mbox := filepath.Join(m.Home, "getmail.mbox")
		writeFile(t, filepath.Join(dir, "getmailrc"), fmt.Sprintf(`[retriever]
type = SimpleIMAPSSLRetriever
server = localhost
port = %d
ca_certs = %s
username = %s
use_xoauth2 = True
password_command = ("mailkey", "token", %q)
mailboxes = ("INBOX",)

[destination]
type = MDA_external
path = /bin/sh
arguments = ("-c", "cat >> %s")
allow_root_commands = true

[options]
read_all = true
delete = false
`, s.IMAPSPort, s.CAFile, e2e.Alice, acct, mbox))
		if out, err := runClient(t, ctx, m, nil, getmail, "--getmaildir", dir, "--rcfile", "getmailrc"); err != nil {
			t.Fatalf("getmail: %v\n%s", err, m.Leaks.Redact(out))
		}
		b, err := os.ReadFile(mbox)
		if err != nil {
			t.Fatalf("getmail delivered nothing: %v", err)
		}
		if got := strings.Count(string(b), "\nSubject: "); got < want {
			t.Errorf("getmail delivered %d messages, the server holds at least %d", got, want)
		}
	})

	t.Run("mutt", func(t *testing.T) {
		mutt := mailkeytest.NeedProgram(t, "mutt", "mutt")
		script := mailkeytest.NeedProgram(t, "script", "bsdutils") // mutt needs a terminal
		cert, err := os.ReadFile(s.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		// mutt trusts the server certificates listed in certificate_file.
		certs := filepath.Join(m.Home, ".mutt_certificates")
		writeFile(t, certs, string(cert))
		rc := filepath.Join(m.Home, ".muttrc")
		writeFile(t, rc, fmt.Sprintf(`set from      = "%[1]s"
set imap_user = "%[1]s"
set folder    = "imap://localhost:%[2]d/"
set spoolfile = "+INBOX"
set ssl_starttls = yes
set ssl_force_tls = yes
set certificate_file = "%[3]s"
set imap_authenticators        = "oauthbearer:xoauth2"
set imap_oauth_refresh_command = "mailkey token %[4]s"
set imap_passive = no
set quit = yes
set header_cache = ""
set message_cachedir = ""
set mail_check = 0
`, e2e.Alice, s.IMAPPort, certs, acct))
		n, err := s.MessageCount(e2e.Alice, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		// Open INBOX, then quit; -d 2 writes the IMAP transcript (without the token) to
		// ~/.muttdebug0.
		cmdline := fmt.Sprintf("%s -n -d 2 -F %s -e 'push <quit>'", mutt, rc)
		out, err := runClient(t, ctx, m, nil, script, "-qec", cmdline, "/dev/null")
		if err != nil {
			t.Fatalf("mutt: %v\n%q", err, out)
		}
		dbg, err := os.ReadFile(filepath.Join(m.Home, ".muttdebug0"))
		if err != nil {
			t.Fatalf("mutt wrote no debug log: %v\n%q", err, out)
		}
		m.Leaks.Output("mutt debug log", string(dbg))
		log := string(dbg)
		if !strings.Contains(log, "Trying method oauthbearer") || !strings.Contains(log, "OK [") {
			t.Errorf("mutt did not authenticate with OAUTHBEARER; debug log:\n%s", m.Leaks.Redact(log))
		}
		if !strings.Contains(log, fmt.Sprintf("* %d EXISTS", n)) {
			t.Errorf("mutt did not select INBOX (%d messages); debug log:\n%s", n, m.Leaks.Redact(log))
		}
	})
}
