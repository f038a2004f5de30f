package servetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// TestProxyRecipes runs the recipes of docs/clients/ that go through mailkey serve, as the
// pages print them: the proxy's own certificate as proxy.md makes it, then fetchmail (IMAP
// and POP3), Python's imaplib/poplib/smtplib, mutt with an app password, mbsync without the
// SASL plugin, git send-email, aerc and getmail6 (POP3). The test writes each marked block where the page says and replaces only
// the example values (ports, app passwords, addresses, /home/alice) with the test's. The
// mailkey accounts are called gmail and work, as on the pages.
func TestProxyRecipes(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("", 3)
	m := &mk{mailkeytest.New(t, leaks, mailkeytest.RefreshMargin("1s"))}
	for _, acct := range []string{"gmail", "work"} {
		m.addAccount(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	}

	// proxy.md, "Trusting the proxy's certificate": make one, point mailkey at it.
	mailkeytest.NeedProgram(t, "openssl", "openssl")
	for _, b := range m.Recipe("docs/clients/proxy.md", "proxy-cert", "/home/alice", m.Home) {
		switch b.Lang {
		case "sh":
			m.Shell(ctx, b)
		case "toml":
			f, err := os.OpenFile(m.Config, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.WriteString("\n" + b.Text)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	srv := m.serve(ctx)
	defer func() {
		if t.Failed() {
			t.Logf("mailkey serve logs:\n%s", srv.logs())
		}
	}()
	port := func(listener string) string {
		_, p, _ := strings.Cut(srv.addr[listener], ":")
		return p
	}
	send := func(t *testing.T, subject string) {
		t.Helper()
		before, err := s.MessageCount(e2e.Alice, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		if err := e2e.SubmissionSend(ctx, e2e.Loopback(s.SubmissionPort), e2e.Plain, nil, e2e.Alice,
			m.Token(ctx, "work"), e2e.XOAUTH2, e2e.Alice, e2e.NewMessage(e2e.Bob, e2e.Alice, subject, "hello")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WaitMessageCount(ctx, e2e.Alice, "INBOX", before+1); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("fetchmail", func(t *testing.T) {
		fetchmail := mailkeytest.NeedProgram(t, "fetchmail", "fetchmail")
		// The page's mda is procmail, which Debian's fetchmail does not pull in: it must be
		// there (install-deps.sh installs it, as the page says). procmail -d delivers to
		// the system's spool, which a test must not touch: the one change of the test's
		// own is an mda that appends to a file, so that what was delivered can be counted.
		mailkeytest.NeedProgram(t, "procmail", "procmail")
		pw := m.addPassword(ctx, "gmail", "fetchmail")
		mbox := filepath.Join(m.Home, "fetchmail.mbox")
		for _, proto := range []string{"POP3", "IMAP"} {
			send(t, "for fetchmail "+proto)
			os.Remove(mbox)
			// "For POP3, use service 1110 protocol POP3 with the same TLS lines."
			m.On(t).Recipe("docs/clients/fetchmail.md", "fetchmail",
				"service 1143 protocol IMAP", fmt.Sprintf("service %s protocol %s", port(strings.ToLower(proto)), proto),
				"PASTE-THE-APP-PASSWORD", pw,
				"/home/alice", m.Home,
				`mda "/usr/bin/procmail -d %T"`, fmt.Sprintf(`mda "cat >> %s"`, mbox))
			out, err := runProgram(ctx, m, fetchmail, "-v")
			m.Leaks.Output("fetchmail -v", out)
			if err != nil {
				t.Fatalf("fetchmail %s: %v\n%s", proto, err, m.Leaks.Redact(out))
			}
			b, err := os.ReadFile(mbox)
			if err != nil || !strings.Contains(string(b), "Subject: for fetchmail "+proto) {
				t.Errorf("fetchmail %s delivered nothing new (%v):\n%s", proto, err, m.Leaks.Redact(out))
			}
		}
	})

	t.Run("python", func(t *testing.T) {
		pw := m.addPassword(ctx, "work", "python")
		writeFile(t, filepath.Join(m.Home, ".config", "mailkey", "work.pass"), pw+"\n", 0o600)
		blocks := m.On(t).Recipe("docs/clients/proxy.md", "proxy-python",
			"/home/alice", m.Home,
			`"127.0.0.1", 1143`, `"127.0.0.1", `+port("imap"),
			`"127.0.0.1", 1110`, `"127.0.0.1", `+port("pop3"),
			`"127.0.0.1", 1587`, `"127.0.0.1", `+port("smtp"),
			"alice@contoso.com", e2e.Alice, "bob@example.org", e2e.Bob)
		script := filepath.Join(m.Home, "proxy.py")
		writeFile(t, script, blocks[0].Text, 0o600)
		before, err := s.MessageCount(e2e.Bob, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		out, err := python(t, ctx, script)
		m.Leaks.Output("proxy.py", out)
		if err != nil || !strings.Contains(out, "messages:") || !strings.Contains(out, "messages, bytes:") {
			t.Fatalf("proxy.md's Python example: %v\n%s", err, m.Leaks.Redact(out))
		}
		if _, err := s.WaitMessageCount(ctx, e2e.Bob, "INBOX", before+1); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("mutt", func(t *testing.T) {
		mutt := mailkeytest.NeedProgram(t, "mutt", "mutt")
		pw := m.addPassword(ctx, "work", "mutt")
		m.On(t).Recipe("docs/clients/proxy.md", "proxy-mutt",
			"localhost:1143", "localhost:"+port("imap"),
			"localhost:1587", "localhost:"+port("smtp"),
			"the-app-password", pw)
		rc := filepath.Join(m.Home, ".muttrc")
		n, err := s.MessageCount(e2e.Alice, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		log := m.On(t).OpenMailbox(ctx, mutt, rc, ".muttdebug0")
		if !strings.Contains(log, fmt.Sprintf("* %d EXISTS", n)) {
			t.Errorf("mutt did not open INBOX (%d messages) through the proxy; debug log:\n%s", n, m.Leaks.Redact(log))
		}
		cmd := exec.CommandContext(ctx, mutt, "-n", "-F", rc, "-s", "mutt through the proxy", e2e.Alice)
		cmd.Env, cmd.Dir, cmd.Stdin = m.Vars, m.Home, strings.NewReader("test\n")
		out, err := cmd.CombinedOutput()
		m.Leaks.Output("mutt -s", string(out))
		if err != nil {
			t.Fatalf("mutt -s: %v\n%s", err, m.Leaks.Redact(string(out)))
		}
		if _, err := s.WaitMessageCount(ctx, e2e.Alice, "INBOX", n+1); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("mbsync", func(t *testing.T) {
		mbsync := mailkeytest.NeedProgram(t, "mbsync", "isync")
		send(t, "for mbsync")
		pw := m.addPassword(ctx, "gmail", "mbsync")
		writeFile(t, filepath.Join(m.Home, ".config", "mailkey", "gmail.app-password"), pw+"\n", 0o600)
		m.On(t).Recipe("docs/clients/mbsync.md", "mbsync-proxy", "Port 1143", "Port "+port("imap"))
		local := filepath.Join(m.Home, "Mail", "gmail")
		if err := os.MkdirAll(local, 0o700); err != nil { // the page's check
			t.Fatal(err)
		}
		out, err := runProgram(ctx, m, mbsync, "-V", "gmail")
		m.Leaks.Output("mbsync", out)
		if err != nil {
			t.Fatalf("mbsync: %v\n%s", err, m.Leaks.Redact(out))
		}
		want, err := s.MessageCount(e2e.Alice, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		var got int
		for _, sub := range []string{"cur", "new"} {
			entries, _ := os.ReadDir(filepath.Join(local, "INBOX", sub))
			got += len(entries)
		}
		if got < want {
			t.Errorf("mbsync copied %d messages through the proxy, the server holds %d:\n%s", got, want, m.Leaks.Redact(out))
		}
	})

	t.Run("git send-email", func(t *testing.T) {
		git := mailkeytest.NeedProgram(t, "git", "git")
		if err := exec.Command(git, "send-email", "--help").Run(); err != nil {
			mailkeytest.Missing(t, "git send-email", "git-email")
		}
		pw := m.addPassword(ctx, "gmail", "git")
		writeFile(t, filepath.Join(m.Home, ".config", "mailkey", "gmail.app-password"), pw+"\n", 0o600)
		m.On(t).Recipe("docs/clients/git-send-email.md", "git-send-email-proxy",
			"smtpServerPort = 1587", "smtpServerPort = "+port("smtp"),
			"smtp://localhost:1587", "smtp://localhost:"+port("smtp"))
		repo := filepath.Join(m.Home, "repo")
		gitIn := func(args ...string) string {
			t.Helper()
			cmd := exec.CommandContext(ctx, git, append([]string{"-C", repo, "-c", "user.name=Alice", "-c", "user.email=" + e2e.Alice}, args...)...)
			cmd.Env = m.Vars
			out, err := cmd.CombinedOutput()
			m.Leaks.Output("git "+args[0], string(out))
			if err != nil {
				t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, m.Leaks.Redact(string(out)))
			}
			return string(out)
		}
		if err := os.MkdirAll(repo, 0o700); err != nil {
			t.Fatal(err)
		}
		gitIn("init", "-q")
		for _, text := range []string{"one\n", "two\n"} {
			writeFile(t, filepath.Join(repo, "file"), text, 0o600)
			gitIn("add", "file")
			gitIn("commit", "-q", "-m", "file: "+strings.TrimSpace(text))
		}
		n, err := s.MessageCount(e2e.Alice, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		gitIn("send-email", "--from="+e2e.Alice, "--to="+e2e.Alice, "--confirm=never", "HEAD^..HEAD")
		if _, err := s.WaitMessageCount(ctx, e2e.Alice, "INBOX", n+1); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("aerc", func(t *testing.T) {
		send(t, "for aerc through the proxy")
		pw := m.addPassword(ctx, "work", "aerc")
		writeFile(t, filepath.Join(m.Home, ".config", "mailkey", "work.pass"), pw+"\n", 0o600)
		m.On(t).Recipe("docs/clients/aerc.md", "aerc-proxy",
			"127.0.0.1:1143", "127.0.0.1:"+port("imap"),
			"127.0.0.1:1587", "127.0.0.1:"+port("smtp"),
			"pass show mailkey/work-aerc", "cat ~/.config/mailkey/work.pass", // "wherever you keep the app password"
			"<alice@contoso.com>", "<"+e2e.Alice+">")
		// The proxy's certificate, trusted as the page says (SSL_CERT_FILE: aerc is a Go program).
		aerc := m.On(t).StartAerc(ctx, "SSL_CERT_FILE="+filepath.Join(m.Home, ".config", "mailkey", "proxy.crt"))
		aerc.WaitScreen("alice's INBOX through the proxy", "for aerc through the proxy")
		n, err := s.MessageCount(e2e.Alice, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		aerc.Send(e2e.Alice, "sent by aerc through the proxy")
		if _, err := s.WaitMessageCount(ctx, e2e.Alice, "INBOX", n+1); err != nil {
			aerc.Screen()
			t.Fatal(err)
		}
	})

	t.Run("getmail", func(t *testing.T) {
		getmail := mailkeytest.NeedProgram(t, "getmail", "getmail6")
		send(t, "for getmail through the proxy")
		pw := m.addPassword(ctx, "gmail", "getmail")
		writeFile(t, filepath.Join(m.Home, ".config", "mailkey", "gmail.app-password"), pw+"\n", 0o600)
		// getmail refuses to deliver to a Maildir as root, which the tests run as: the one
		// change of the test's own is a destination that appends to a file.
		mbox := filepath.Join(m.Home, "getmail.mbox")
		m.On(t).Recipe("docs/clients/getmail.md", "getmail-proxy",
			"port = 1995", "port = "+port("pop3s"),
			"/home/alice", m.Home,
			"type = Maildir\npath = ~/Mail/inbox/\n",
			fmt.Sprintf("type = MDA_external\npath = /bin/sh\narguments = (\"-c\", \"cat >> %s\")\nallow_root_commands = true\n", mbox))
		out, err := runProgram(ctx, m, getmail)
		m.Leaks.Output("getmail", out)
		if err != nil {
			t.Fatalf("getmail: %v\n%s", err, m.Leaks.Redact(out))
		}
		if b, err := os.ReadFile(mbox); err != nil || !strings.Contains(string(b), "Subject: for getmail through the proxy") {
			t.Errorf("getmail delivered nothing through the proxy (%v):\n%s", err, m.Leaks.Redact(out))
		}
	})
}
