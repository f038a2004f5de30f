package servetest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/mailkey/mailkey/internal/testwait"
	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// TestServeNotifiesSystemd plays systemd's part for the unit mailkey service install writes:
// it runs the unit's ExecStart= with only the unit's Environment= (and HOME, PATH), and
// NOTIFY_SOCKET naming a socket the test reads. That finds the account, so the unit's
// folders are the user's. READY=1 comes only once the listeners accept connections: its
// status line names their addresses, and a client connecting to the IMAP one at that moment
// logs in through it. SIGTERM then brings STOPPING=1 and a clean exit.
func TestServeNotifiesSystemd(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	// Ports the kernel picks; off for POP3, to see that an unused listener is not named.
	m := &mk{mailkeytest.New(t, leaks, "[proxy]\nimap = \"127.0.0.1:0\"\npop3 = \"\"\nsmtp = \"127.0.0.1:0\"\nstatus = \"127.0.0.1:0\"\n")}
	const acct = "work"
	m.addAccount(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	pw := m.addPassword(ctx, acct, "clients")

	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	next := func() string {
		t.Helper()
		conn.SetReadDeadline(testwait.Deadline(t))
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no message from mailkey serve on NOTIFY_SOCKET: %v", err)
		}
		return string(buf[:n])
	}

	m.Must(ctx, "", "service", "install")
	argv, env := unitCommand(t, filepath.Join(m.Home, ".config", "systemd", "user", "mailkey.service"))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(env, "HOME="+m.Home, "PATH="+os.Getenv("PATH"), "NOTIFY_SOCKET="+sock)
	cmd.Dir = m.Dir
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		leaks.Output("stderr of mailkey serve", stderr.String())
	}()

	msg := next()
	lines := strings.Split(msg, "\n")
	if lines[0] != "READY=1" || len(lines) != 2 || !strings.HasPrefix(lines[1], "STATUS=listening: ") {
		t.Fatalf("first message %q, want READY=1 and a STATUS line", msg)
	}
	addr := map[string]string{}
	for _, l := range strings.Split(strings.TrimPrefix(lines[1], "STATUS=listening: "), ", ") {
		name, a, _ := strings.Cut(l, " ")
		addr[name] = a
	}
	if len(addr) != 3 || addr["imap"] == "" || addr["smtp"] == "" || addr["status"] == "" {
		t.Fatalf("listeners in the status line %q: %v", lines[1], addr)
	}
	c := dialRaw(t, addr["imap"])
	c.until("* OK")
	c.send("a LOGIN " + acct + " " + pw + "\r\n")
	if l := c.until("a "); !strings.HasPrefix(l, "a OK") {
		t.Fatalf("login through the proxy right after READY=1: %q\n%s", l, stderr.String())
	}
	c.send("b LOGOUT\r\n")
	c.until("b ")

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if msg := next(); msg != "STOPPING=1" {
		t.Errorf("message after SIGTERM %q, want STOPPING=1", msg)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("mailkey serve after SIGTERM: %v\n%s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "could not tell systemd") {
		t.Errorf("serve failed to notify:\n%s", stderr.String())
	}
}

// unitCommand reads the ExecStart= and Environment= lines of a unit that mailkey service
// install wrote (in a temporary folder: no word needs quoting).
func unitCommand(t *testing.T, path string) (argv, env []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("mailkey service install wrote no unit: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			argv = strings.Fields(v)
		}
		if v, ok := strings.CutPrefix(l, "Environment="); ok {
			env = append(env, v)
		}
	}
	if len(argv) < 2 || argv[1] != "serve" || len(env) == 0 {
		t.Fatalf("unit %s: ExecStart %q, Environment %q", path, argv, env)
	}
	return argv, env
}

// lockedBuffer is a bytes.Buffer that a command writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
