package servetest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
)

// mailkeyBin is the binary under test, built once by TestMain.
var mailkeyBin string

// testTimeout bounds one top-level test; nothing asserts on time.
const testTimeout = 5 * time.Minute

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "mailkey-servetest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "servetest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || len(bytes.TrimSpace(gomod)) == 0 || string(bytes.TrimSpace(gomod)) == os.DevNull {
		fmt.Fprintf(os.Stderr, "servetest: cannot find the module root (go env GOMOD: %v)\n", err)
		return 1
	}
	mailkeyBin = filepath.Join(dir, "bin", "mailkey")
	build := exec.Command("go", "build", "-o", mailkeyBin, "./cmd/mailkey")
	build.Dir = filepath.Dir(string(bytes.TrimSpace(gomod)))
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "servetest: go build ./cmd/mailkey: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// mk is one mailkey user: configuration, state folder and home of its own.
type mk struct {
	t       *testing.T
	dir     string
	config  string
	state   string
	home    string
	env     []string
	mu      sync.Mutex
	secrets map[string]string // secret → what it is, for the leak check
}

func newMailkey(t *testing.T, config string) *mk {
	t.Helper()
	dir := t.TempDir()
	m := &mk{t: t, dir: dir, config: filepath.Join(dir, "config.toml"), state: filepath.Join(dir, "state"),
		home: filepath.Join(dir, "home"), secrets: map[string]string{}}
	if err := os.MkdirAll(m.home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "HOME" || k == "BROWSER" || strings.HasPrefix(k, "MAILKEY_") || strings.HasPrefix(k, "XDG_") {
			continue
		}
		m.env = append(m.env, kv)
	}
	m.env = append(m.env, "HOME="+m.home, "MAILKEY_CONFIG="+m.config, "MAILKEY_STATE_DIR="+m.state,
		"MAILKEY_NO_KEYRING=1", "BROWSER=true")
	m.secret("password", e2e.AlicePassword, e2e.BobPassword, e2e.CarolPassword)
	return m
}

func (m *mk) secret(what string, values ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range values {
		if len(v) >= 8 {
			m.secrets[v] = what
		}
	}
}

// leaks says which kind of secret appears in text; it never quotes one.
func (m *mk) leaks(label, text string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var found []string
	for s, what := range m.secrets {
		if strings.Contains(text, s) {
			found = append(found, fmt.Sprintf("a %s (%d bytes) appears in %s", what, len(s), label))
		}
	}
	return found
}

type result struct {
	stdout, stderr string
	code           int
}

func (m *mk) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, mailkeyBin, args...)
	cmd.Env, cmd.Dir = m.env, m.dir
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

func (m *mk) run(ctx context.Context, stdin string, args ...string) result {
	m.t.Helper()
	cmd := m.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		m.t.Fatalf("mailkey %s: %v", strings.Join(args, " "), err)
	}
	return result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
}

func (m *mk) must(ctx context.Context, stdin string, args ...string) result {
	m.t.Helper()
	r := m.run(ctx, stdin, args...)
	if r.code != 0 {
		m.t.Fatalf("mailkey %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

// token prints the account's current access token and records it as a secret.
func (m *mk) token(ctx context.Context, name string) string {
	m.t.Helper()
	tok := strings.TrimSpace(m.must(ctx, "", "token", name).stdout)
	m.secret("access token", tok)
	return tok
}

// addPassword runs mailkey password add and returns the password it printed.
func (m *mk) addPassword(ctx context.Context, name, label string) string {
	m.t.Helper()
	r := m.must(ctx, "", "password", "add", name, "--label", label)
	pw := strings.TrimSpace(r.stdout)
	if strings.Count(r.stdout, "\n") != 1 || len(pw) < 20 {
		m.t.Fatalf("password add printed %d bytes on %d lines, want one password alone", len(r.stdout), strings.Count(r.stdout, "\n"))
	}
	m.secret("app password", pw, strings.ReplaceAll(pw, "-", ""))
	return pw
}

// addAccount adds a generic-provider account for user on the stack (STARTTLS servers, the
// stack's CA) and imports a refresh token for it.
func (m *mk) addAccount(ctx context.Context, s *e2e.Stack, name, user, password string) {
	m.t.Helper()
	m.must(ctx, "", "add", name, "--provider", "generic", "--issuer", s.Issuer, "--client-id", e2e.ClientPublic,
		"--email", user, "--imap", s.IMAP, "--pop3", s.POP3, "--smtp", s.Submission, "--ca-file", s.CAFile,
		"--scope", "openid", "--scope", "email", "--scope", e2e.ScopeMail)
	tok, err := s.AuthCodeToken(ctx, user, password)
	if err != nil {
		m.t.Fatal(err)
	}
	m.secret("refresh token", tok.RefreshToken)
	m.secret("access token", tok.AccessToken)
	m.must(ctx, tok.RefreshToken+"\n", "login", name, "--import")
}

// freeAddrs returns n loopback addresses whose ports were free a moment ago.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var lns []net.Listener
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

// serving is a running mailkey serve.
type serving struct {
	m          *mk
	cmd        *exec.Cmd
	addr       map[string]string // listener → address
	certFile   string
	mu         sync.Mutex
	stderr     bytes.Buffer
	eof        chan struct{}
	stopped    bool
	finalError string
}

// serve starts mailkey serve with every listener on a free loopback port and waits until its
// status page answers.
func (m *mk) serve(ctx context.Context) *serving {
	m.t.Helper()
	names := []string{"imap", "imaps", "pop3", "pop3s", "smtp", "smtps", "status"}
	addrs := freeAddrs(m.t, len(names))
	s := &serving{m: m, addr: map[string]string{}, eof: make(chan struct{}), certFile: filepath.Join(m.state, "proxy-cert.pem")}
	args := []string{"serve", "--shutdown-timeout", "5s"}
	for i, n := range names {
		s.addr[n] = addrs[i]
		args = append(args, "--"+n, addrs[i])
	}
	s.cmd = m.command(context.WithoutCancel(ctx), args...)
	pipe, err := s.cmd.StderrPipe()
	if err != nil {
		m.t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	go func() {
		defer close(s.eof)
		br := bufio.NewReader(pipe)
		for {
			line, err := br.ReadString('\n')
			s.mu.Lock()
			s.stderr.WriteString(line)
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	m.t.Cleanup(func() { s.stop() })
	for {
		resp, err := http.Get("http://" + s.addr["status"] + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-s.eof:
			m.t.Fatalf("mailkey serve ended at start:\n%s", s.logs())
		case <-ctx.Done():
			m.t.Fatalf("mailkey serve did not answer on %s:\n%s", s.addr["status"], s.logs())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return s
}

func (s *serving) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// stop sends SIGTERM and waits for the exit; it returns the exit status.
func (s *serving) stop() int {
	if !s.stopped {
		s.stopped = true
		s.cmd.Process.Signal(syscall.SIGTERM)
		<-s.eof
		s.cmd.Wait()
	}
	return s.cmd.ProcessState.ExitCode()
}

// get fetches a path from the status listener.
func (s *serving) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + s.addr["status"] + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return string(b)
}

// metric sums the samples of a metric on /metrics whose labels contain every filter.
func (s *serving) metric(t *testing.T, name string, filters ...string) float64 {
	t.Helper()
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`)
	var sum float64
	for _, l := range strings.Split(s.get(t, "/metrics"), "\n") {
		mm := re.FindStringSubmatch(l)
		if mm == nil {
			continue
		}
		ok := true
		for _, f := range filters {
			ok = ok && strings.Contains(mm[1], f)
		}
		if ok {
			v, _ := strconv.ParseFloat(mm[2], 64)
			sum += v
		}
	}
	return sum
}

// python runs a script in the test's folder with python3 and returns its combined output.
func python(t *testing.T, ctx context.Context, script string, args ...string) (string, error) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is missing")
	}
	cmd := exec.CommandContext(ctx, py, append([]string{script}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func writeFile(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
}

// needProgram returns the path of a program, or skips (fails in CI) when it is missing.
func needProgram(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("MAILKEY_E2E") == "1" {
			t.Fatalf("MAILKEY_E2E=1 but %s is missing: install %s (test/e2e/install-deps.sh)", name, pkg)
		}
		t.Skipf("%s is missing: install %s", name, pkg)
	}
	return p
}

// runProgram runs a mail client as m's user and returns its combined output.
func runProgram(ctx context.Context, m *mk, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Dir = m.env, m.home
	out, err := cmd.CombinedOutput()
	return string(out), err
}
