package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// envPlaceholder is how README.md writes the sandbox's env file, whose folder differs per run.
const envPlaceholder = "/tmp/mailkey-sandbox-…/env"

// TestReadmeTryItLocally starts the sandbox as make sandbox does and runs README.md's "Try it
// locally" steps in one shell, in order, as pasted: every step must succeed, and the proxy
// the last one starts must let a password client in on the port the sandbox printed. Then
// the sandbox must stop on Ctrl-C and leave no scratch folder behind.
func TestReadmeTryItLocally(t *testing.T) {
	if err := e2e.Prerequisites(); err != nil {
		if os.Getenv("MAILKEY_E2E") == "1" {
			t.Fatalf("MAILKEY_E2E=1 but %v", err)
		}
		t.Skipf("skipping e2e test: %v", err)
	}
	ctx := mailkeytest.Context(t)
	steps, err := e2e.Recipe("../../../../README.md", "sandbox")
	if err != nil {
		t.Fatal(err)
	}
	script := steps[0].Text
	if !strings.Contains(script, envPlaceholder) {
		t.Fatalf("README.md's sandbox steps no longer source %s", envPlaceholder)
	}

	// make sandbox: make build, then the sandbox, from the top of the source tree (where
	// bin/mailkey is).
	mailkey, cleanup, err := mailkeytest.BuildBinary()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	top := filepath.Dir(filepath.Dir(mailkey))
	sandbox := filepath.Join(top, "sandbox")
	if out, err := exec.Command("go", "build", "-o", sandbox, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build the sandbox: %v\n%s", err, out)
	}
	sb := startLines(t, ctx, top, os.Environ(), sandbox)
	banner := sb.waitStdout(ctx, "the end of the banner", func(l string) bool { return strings.HasPrefix(l, "press Ctrl-C") })
	files := fields(t, banner, "files")         // DIR (shell exports: . DIR/env)
	proxy := fields(t, banner, "mailkey serve") // imap ADDR pop3 ADDR smtp ADDR status URL
	if len(files) < 2 || len(proxy) < 2 || proxy[0] != "imap" {
		t.Fatalf("the banner names no scratch folder or no IMAP address for mailkey serve:\n%s", strings.Join(banner, "\n"))
	}
	dir, envFile := files[0], strings.TrimSuffix(files[len(files)-1], ")")
	imapAddr := proxy[1]
	env := readEnv(t, envFile)

	// A user's shell on a machine without a browser: README's comment names the stand-in.
	home := t.TempDir()
	vars := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "MAILKEY_NO_KEYRING=1",
		"BROWSER=" + env["SANDBOX_BROWSER"]}
	sh := startLines(t, ctx, home, vars, "bash", "-e", "-c", strings.ReplaceAll(script, envPlaceholder, envFile))
	sh.waitStderr(ctx, `mailkey serve's "listening" line for `+imapAddr, func(l string) bool {
		return strings.Contains(l, "listening") && strings.Contains(l, imapAddr)
	})
	out := sh.stdout()
	if len(out) == 0 {
		t.Fatal("the README's steps printed nothing on stdout: no app password")
	}
	password := out[len(out)-1] // mailkey password add prints it alone, last before serve

	pem, err := os.ReadFile(filepath.Join(env["MAILKEY_STATE_DIR"], "proxy-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tc := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	if err := e2e.IMAPPasswordLogin(ctx, imapAddr, e2e.StartTLS, tc, "sandbox", password); err != nil {
		t.Errorf("IMAP LOGIN through mailkey serve on %s with the app password: %v", imapAddr, err)
	}

	sh.stop(syscall.SIGTERM)
	sb.stop(syscall.SIGINT)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the sandbox left its scratch folder %s behind (%v)", dir, err)
	}
}

// lines is a running command whose stdout and stderr lines the test reads as they come.
type lines struct {
	t       *testing.T
	cmd     *exec.Cmd
	mu      sync.Mutex
	out     []string
	err     []string
	changed chan struct{}
	done    chan struct{}
}

func startLines(t *testing.T, ctx context.Context, dir string, env []string, name string, args ...string) *lines {
	t.Helper()
	l := &lines{t: t, cmd: exec.CommandContext(ctx, name, args...), changed: make(chan struct{}, 1), done: make(chan struct{})}
	l.cmd.Dir, l.cmd.Env = dir, env
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // stop reaches the children too
	stdout, err := l.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := l.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	read := func(r io.Reader, dst *[]string) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.mu.Lock()
			*dst = append(*dst, sc.Text())
			l.mu.Unlock()
			select {
			case l.changed <- struct{}{}:
			default:
			}
		}
	}
	wg.Add(2)
	go read(stdout, &l.out)
	go read(stderr, &l.err)
	go func() { wg.Wait(); l.cmd.Wait(); close(l.done) }()
	t.Cleanup(func() { l.stop(syscall.SIGTERM) }) // the sandbox removes its folder on SIGTERM too
	l.cmd.WaitDelay = 10 * time.Second
	return l
}

func (l *lines) stdout() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.out...)
}

func (l *lines) waitStdout(ctx context.Context, what string, match func(string) bool) []string {
	l.t.Helper()
	return l.wait(ctx, what, &l.out, match)
}

func (l *lines) waitStderr(ctx context.Context, what string, match func(string) bool) []string {
	l.t.Helper()
	return l.wait(ctx, what, &l.err, match)
}

// wait waits for a line of src that matches and returns src up to it.
func (l *lines) wait(ctx context.Context, what string, src *[]string, match func(string) bool) []string {
	l.t.Helper()
	for {
		l.mu.Lock()
		for i, s := range *src {
			if match(s) {
				got := append([]string(nil), (*src)[:i+1]...)
				l.mu.Unlock()
				return got
			}
		}
		l.mu.Unlock()
		select {
		case <-l.changed:
			continue
		case <-l.done:
		case <-ctx.Done():
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.t.Fatalf("%s: no %s; stdout:\n%s\nstderr:\n%s", strings.Join(l.cmd.Args, " "), what,
			strings.Join(l.out, "\n"), strings.Join(l.err, "\n"))
	}
}

// stop signals the command's process group and waits for it to end.
func (l *lines) stop(sig syscall.Signal) {
	select {
	case <-l.done:
		return
	default:
	}
	syscall.Kill(-l.cmd.Process.Pid, sig)
	<-l.done
}

// fields returns the words after the banner line that starts with name.
func fields(t *testing.T, banner []string, name string) []string {
	t.Helper()
	for _, l := range banner {
		if rest, ok := strings.CutPrefix(l, name+" "); ok {
			return strings.Fields(rest)
		}
	}
	t.Fatalf("the banner has no %q line:\n%s", name, strings.Join(banner, "\n"))
	return nil
}

// readEnv reads the sandbox's env file: export NAME='VALUE' lines.
func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(l, "export "), "=")
		if ok {
			env[k] = strings.Trim(v, "'")
		}
	}
	return env
}
