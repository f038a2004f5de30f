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

// countMaildir returns the number of messages in a Maildir folder.
func countMaildir(t *testing.T, dir string) int {
	t.Helper()
	var n int
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatalf("no Maildir at %s: %v", dir, err)
		}
		n += len(entries)
	}
	return n
}

// TestRecipes runs the client recipes of docs/clients/ that use mailkey token, as the pages
// print them: the test writes each marked block where the page says and replaces only the
// example values (addresses, hosts, ports, the CA of a private server) with the stack's. The
// mailkey accounts are called gmail and work, as on the pages. Recipes through the proxy run
// in servetest's TestProxyRecipes.
func TestRecipes(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("", 1)
	m := newMailkey(t, leaks, "1s")
	for _, acct := range []string{"gmail", "work"} {
		m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
		m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	}
	port := func(p int) string { return fmt.Sprint(p) }
	// The stack's server certificate, where clients look for certificates they were told
	// to trust (mutt and neomutt: ~/.mutt_certificates, as when one accepts it once).
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(m.Home, ".mutt_certificates"), string(ca))

	t.Run("msmtp", func(t *testing.T) {
		msmtp := mailkeytest.NeedProgram(t, "msmtp", "msmtp")
		m.On(t).Recipe("docs/clients/msmtp.md", "msmtp",
			"tls_trust_file system", "tls_trust_file "+s.CAFile,
			"host smtp.gmail.com\nport 465", "host localhost\nport "+port(s.SubmissionsPort),
			"host smtp.office365.com\nport 587", "host localhost\nport "+port(s.SubmissionPort),
			"alice@gmail.com", e2e.Alice, "alice@contoso.com", e2e.Alice)
		before, err := s.MessageCount(e2e.Alice, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		// gmail: implicit TLS and OAUTHBEARER; work: STARTTLS and XOAUTH2.
		for _, acct := range []string{"gmail", "work"} {
			msg := e2e.NewMessage(e2e.Alice, e2e.Alice, "msmtp "+acct, "sent by msmtp with a token from mailkey")
			if out, err := runClient(t, ctx, m, msg, msmtp, "-a", acct, e2e.Alice); err != nil {
				t.Fatalf("msmtp -a %s: %v\n%s", acct, err, out)
			}
		}
		if _, err := s.WaitMessageCount(ctx, e2e.Alice, "INBOX", before+2); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("mbsync", func(t *testing.T) {
		mailkeytest.NeedProgram(t, "mbsync", "isync")
		// the Cyrus SASL XOAUTH2 plugin mbsync needs
		if plugins, _ := filepath.Glob("/usr/lib/*/sasl2/libkdexoauth2.so*"); len(plugins) == 0 {
			mailkeytest.Missing(t, "the SASL plugin libkdexoauth2", "libsasl2-modules-kdexoauth2")
		}
		want := sendToAlice(t, ctx, s, m, "for mbsync")
		// The page's private-CA line; and Timeout 0, the test's own: mbsync gives up on a
		// server that is silent for 20 s, which a busy machine can be (the test's deadline
		// bounds the run).
		blocks := m.On(t).Recipe("docs/clients/mbsync.md", "mbsync",
			"Host imap.gmail.com\nPort 993", "Host localhost\nPort "+port(s.IMAPSPort),
			"alice@gmail.com", e2e.Alice,
			"SSLType IMAPS\n", "SSLType IMAPS\nCertificateFile "+s.CAFile+"\nTimeout 0\n")
		for _, b := range blocks {
			if b.Lang == "sh" {
				m.On(t).Shell(ctx, b) // the page's check: mkdir, then mbsync -V gmail
			}
		}
		if got := countMaildir(t, filepath.Join(m.Home, "Mail", "gmail", "INBOX")); got < want {
			t.Errorf("mbsync copied %d messages, the server holds at least %d", got, want)
		}
	})

	t.Run("offlineimap", func(t *testing.T) {
		offlineimap := mailkeytest.NeedProgram(t, "offlineimap", "offlineimap3")
		want := sendToAlice(t, ctx, s, m, "for offlineimap")
		m.On(t).Recipe("docs/clients/offlineimap.md", "offlineimap",
			"remotehost = imap.gmail.com\nremoteport = 993", "remotehost = localhost\nremoteport = "+port(s.IMAPSPort),
			"alice@gmail.com", e2e.Alice,
			"sslcacertfile = OS-DEFAULT", "sslcacertfile = "+s.CAFile)
		if out, err := runClient(t, ctx, m, nil, offlineimap, "-o", "-u", "basic"); err != nil {
			t.Fatalf("offlineimap: %v\n%s", err, m.Leaks.Redact(out))
		}
		if got := countMaildir(t, filepath.Join(m.Home, "Mail", "gmail", "INBOX")); got < want {
			t.Errorf("offlineimap copied %d messages, the server holds at least %d", got, want)
		}
	})

	t.Run("getmail", func(t *testing.T) {
		getmail := mailkeytest.NeedProgram(t, "getmail", "getmail6")
		want := sendToAlice(t, ctx, s, m, "for getmail")
		// The page's port and private-CA lines. getmail refuses to deliver to a Maildir as
		// root, which the tests run as: the one change of the test's own is a destination
		// that appends the messages to a file.
		mbox := filepath.Join(m.Home, "getmail.mbox")
		m.On(t).Recipe("docs/clients/getmail.md", "getmail",
			"server = imap.gmail.com\n", fmt.Sprintf("server = localhost\nport = %d\nca_certs = %s\n", s.IMAPSPort, s.CAFile),
			"username = you@gmail.com", "username = "+e2e.Alice,
			"type = Maildir\npath = ~/Mail/inbox/\n",
			fmt.Sprintf("type = MDA_external\npath = /bin/sh\narguments = (\"-c\", \"cat >> %s\")\nallow_root_commands = true\n", mbox),
			"read_all = false", "read_all = true")
		if out, err := runClient(t, ctx, m, nil, getmail); err != nil {
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

	muttSubs := []string{
		"imaps://imap.gmail.com:993/", "imaps://localhost:" + port(s.IMAPSPort) + "/",
		"@smtp.gmail.com:465/", "@localhost:" + port(s.SubmissionsPort) + "/",
		"alice@gmail.com", e2e.Alice,
	}
	for _, prog := range []struct{ name, pkg, debugLog string }{
		{"mutt", "mutt", ".muttdebug0"}, {"neomutt", "neomutt", ".neomuttdebug0"},
	} {
		t.Run(prog.name+" IMAP and SMTP", func(t *testing.T) {
			bin := mailkeytest.NeedProgram(t, prog.name, prog.pkg)
			m.On(t).Recipe("docs/clients/mutt.md", "mutt", muttSubs...)
			rc := filepath.Join(m.Home, ".muttrc")
			n, err := s.MessageCount(e2e.Alice, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			log := m.On(t).OpenMailbox(ctx, bin, rc, prog.debugLog)
			// mutt logs the server's lines, neomutt only its own: either way a SELECT
			// follows a successful login.
			opened := strings.Contains(log, fmt.Sprintf("* %d EXISTS", n)) || prog.name == "neomutt" && strings.Contains(log, `SELECT "INBOX"`)
			if !strings.Contains(log, "Trying method oauthbearer") || !opened {
				t.Errorf("%s did not open INBOX (%d messages) with OAUTHBEARER; debug log:\n%s", prog.name, n, m.Leaks.Redact(log))
			}
			// The page's check: a message in batch mode, over SMTP.
			if out, err := runClient(t, ctx, m, []byte("test\n"), bin, "-n", "-F", rc, "-s", "mailkey test "+prog.name, e2e.Alice); err != nil {
				t.Fatalf("%s -s: %v\n%s", prog.name, err, out)
			}
			if _, err := s.WaitMessageCount(ctx, e2e.Alice, "INBOX", n+1); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("mutt Microsoft", func(t *testing.T) {
		mutt := mailkeytest.NeedProgram(t, "mutt", "mutt")
		m.On(t).Recipe("docs/clients/mutt.md", "mutt-microsoft",
			"imaps://outlook.office365.com:993/", "imaps://localhost:"+port(s.IMAPSPort)+"/",
			"@smtp.office365.com:587/", "@localhost:"+port(s.SubmissionPort)+"/",
			"alice@contoso.com", e2e.Alice)
		rc := filepath.Join(m.Home, ".muttrc")
		n, err := s.MessageCount(e2e.Alice, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		log := m.On(t).OpenMailbox(ctx, mutt, rc, ".muttdebug0")
		if !strings.Contains(log, "Trying method xoauth2") || !strings.Contains(log, fmt.Sprintf("* %d EXISTS", n)) {
			t.Errorf("mutt did not open INBOX (%d messages) with XOAUTH2; debug log:\n%s", n, m.Leaks.Redact(log))
		}
		if out, err := runClient(t, ctx, m, []byte("test\n"), mutt, "-n", "-F", rc, "-s", "mailkey test xoauth2", e2e.Alice); err != nil {
			t.Fatalf("mutt -s: %v\n%s", err, out)
		}
		if _, err := s.WaitMessageCount(ctx, e2e.Alice, "INBOX", n+1); err != nil {
			t.Fatal(err)
		}
	})

	for _, prog := range []struct{ name, pkg, recipe, rc, debugLog string }{
		{"mutt", "mutt", "mutt-pop3", ".muttrc", ".muttdebug0"},
		{"neomutt", "neomutt", "neomutt-pop3", ".neomuttrc", ".neomuttdebug0"},
	} {
		t.Run(prog.name+" POP3", func(t *testing.T) {
			bin := mailkeytest.NeedProgram(t, prog.name, prog.pkg)
			pop := "pops://" + e2e.Alice + "@localhost:" + port(s.POP3SPort)
			m.On(t).Recipe("docs/clients/mutt.md", prog.recipe, "pops://alice@gmail.com@pop.gmail.com:995", pop)
			// neomutt asks to create its default $folder, ~/Mail, when it is missing.
			if err := os.MkdirAll(filepath.Join(m.Home, "Mail"), 0o700); err != nil {
				t.Fatal(err)
			}
			log := m.On(t).OpenMailbox(ctx, bin, filepath.Join(m.Home, prog.rc), prog.debugLog, "-f", pop)
			// mutt logs the server's reply, neomutt its next step.
			if !strings.Contains(log, "Trying method oauthbearer") ||
				!strings.Contains(log, "+OK Logged in") && !strings.Contains(log, "Fetching list of messages") {
				t.Errorf("%s did not log in over POP3; debug log:\n%s", prog.name, m.Leaks.Redact(log))
			}
		})
	}

	t.Run("git credential helper", func(t *testing.T) {
		git := mailkeytest.NeedProgram(t, "git", "git")
		hostPort := "localhost:" + port(s.SubmissionPort)
		m.On(t).Recipe("docs/clients/git-send-email.md", "git-send-email",
			"smtp://smtp.gmail.com:587", "smtp://"+hostPort,
			"smtpServer = smtp.gmail.com", "smtpServer = localhost",
			"smtpServerPort = 587", "smtpServerPort = "+port(s.SubmissionPort),
			"alice@gmail.com", e2e.Alice)
		// The page's check, git credential fill; its output is the token, so it goes to
		// the leak check only as a secret.
		cmd := exec.CommandContext(ctx, git, "credential", "fill")
		cmd.Env, cmd.Dir = m.Vars, m.Home
		cmd.Stdin = strings.NewReader("protocol=smtp\nhost=" + hostPort + "\nusername=" + e2e.Alice + "\n")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		m.Leaks.Output("git credential fill (stderr)", stderr.String())
		if err != nil {
			t.Fatalf("git credential fill: %v\n%s", err, m.Leaks.Redact(stderr.String()))
		}
		var tok string
		for _, l := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(l, "password="); ok {
				tok = v
			}
		}
		if tok == "" {
			t.Fatalf("git credential fill printed no password= line (%d bytes)", len(out))
		}
		m.Leaks.Secret("access token from git credential fill", tok)
		if err := e2e.SubmissionSend(ctx, e2e.Loopback(s.SubmissionPort), e2e.StartTLS, s.TLSConfig(), e2e.Alice, tok, e2e.OAUTHBEARER, "", nil); err != nil {
			t.Errorf("submission OAUTHBEARER with the token git credential fill printed: %v", err)
		}
	})

	t.Run("aerc", func(t *testing.T) {
		sendToAlice(t, ctx, s, m, "for aerc")
		m.On(t).Recipe("docs/clients/aerc.md", "aerc",
			"@imap.gmail.com:993", "@localhost:"+port(s.IMAPSPort),
			"@smtp.gmail.com:465", "@localhost:"+port(s.SubmissionsPort),
			"@outlook.office365.com:993", "@localhost:"+port(s.IMAPSPort),
			"@smtp.office365.com:587", "@localhost:"+port(s.SubmissionPort),
			"alice%40gmail.com", "alice%40example.test", "alice%40contoso.com", "alice%40example.test",
			"<alice@gmail.com>", "<"+e2e.Alice+">", "<alice@contoso.com>", "<"+e2e.Alice+">")
		// aerc is a Go program: it trusts the stack's CA through SSL_CERT_FILE.
		aerc := m.On(t).StartAerc(ctx, "SSL_CERT_FILE="+s.CAFile)
		aerc.WaitScreen("alice's INBOX with the message sent for it, over IMAP", "for aerc")
		n, err := s.MessageCount(e2e.Alice, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		// gmail: implicit TLS and OAUTHBEARER; then work: STARTTLS and XOAUTH2.
		aerc.Send(e2e.Alice, "sent by aerc")
		if _, err := s.WaitMessageCount(ctx, e2e.Alice, "INBOX", n+1); err != nil {
			aerc.Screen()
			t.Fatal(err)
		}
		aerc.Command(":next-tab")
		aerc.Send(e2e.Alice, "sent by aerc from work")
		if _, err := s.WaitMessageCount(ctx, e2e.Alice, "INBOX", n+2); err != nil {
			aerc.Screen()
			t.Fatal(err)
		}
	})
}
