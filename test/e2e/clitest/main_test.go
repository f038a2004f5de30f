package clitest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
)

// mailkeyBin is the binary under test, built once by TestMain.
var mailkeyBin string

// testTimeout bounds one top-level test; the stack's own start is bounded by package e2e.
const testTimeout = 3 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "mailkey-clitest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "clitest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || len(bytes.TrimSpace(gomod)) == 0 || string(bytes.TrimSpace(gomod)) == os.DevNull {
		fmt.Fprintf(os.Stderr, "clitest: cannot find the module root (go env GOMOD: %v)\n", err)
		return 1
	}
	mailkeyBin = filepath.Join(dir, "bin", "mailkey")
	build := exec.Command("go", "build", "-o", mailkeyBin, "./cmd/mailkey")
	build.Dir = filepath.Dir(string(bytes.TrimSpace(gomod)))
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "clitest: go build ./cmd/mailkey: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// leakCheck collects every secret a test saw (tokens, refresh tokens, authorization codes,
// client secrets, passwords) and everything mailkey printed that is not meant to carry one
// (stderr of every command, stdout of status, config, add, login and logout), and at the end
// of the test fails it if any secret occurs in that output or in plain text in a state folder.
type leakCheck struct {
	mu      sync.Mutex
	secrets map[string]string // secret → what it is
	outputs []output
	dirs    []string
}

type output struct{ label, text string }

// newLeakCheck returns a check that runs when t ends (after its subtests).
func newLeakCheck(t *testing.T) *leakCheck {
	l := &leakCheck{secrets: map[string]string{}}
	l.secret("password", e2e.AlicePassword, e2e.BobPassword)
	l.secret("client secret", e2e.ClientDaemonSecret, e2e.ClientConfidentialSecret)
	t.Cleanup(func() { l.verify(t) })
	return l
}

// secret records values that must never be printed. Short values are ignored: they would
// match by chance.
func (l *leakCheck) secret(what string, values ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range values {
		if len(v) >= 8 {
			l.secrets[v] = what
		}
	}
}

func (l *leakCheck) output(label, text string) {
	if text == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outputs = append(l.outputs, output{label, text})
}

func (l *leakCheck) stateDir(dir string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dirs = append(l.dirs, dir)
}

func (l *leakCheck) verify(t *testing.T) {
	if len(l.secrets) < 3 {
		t.Errorf("leak check saw only %d secrets: the test recorded too little to prove anything", len(l.secrets))
	}
	for _, f := range l.findings() {
		t.Error(f)
	}
}

// findings says which kind of secret appears where; it never quotes the secret.
func (l *leakCheck) findings() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	outs := append([]output(nil), l.outputs...)
	for _, d := range l.dirs {
		filepath.WalkDir(d, func(p string, de fs.DirEntry, err error) error {
			if err == nil && de.Type().IsRegular() {
				if b, err := os.ReadFile(p); err == nil {
					outs = append(outs, output{"state file " + p, string(b)})
				}
			}
			return nil
		})
	}
	var found []string
	for _, o := range outs {
		for s, what := range l.secrets {
			if strings.Contains(o.text, s) {
				found = append(found, fmt.Sprintf("a %s (%d bytes) appears in %s", what, len(s), o.label))
			}
		}
	}
	return found
}

// mk is one user of mailkey: a configuration file, a state folder and a home of its own.
type mk struct {
	t      *testing.T
	dir    string
	config string
	state  string
	home   string
	env    []string
	leaks  *leakCheck
}

// newMailkey prepares a fresh mailkey user. margin, when not empty, is written as
// refresh_margin before any account is added.
func newMailkey(t *testing.T, leaks *leakCheck, margin string) *mk {
	t.Helper()
	dir := t.TempDir()
	m := &mk{t: t, dir: dir, config: filepath.Join(dir, "config.toml"), state: filepath.Join(dir, "state"),
		home: filepath.Join(dir, "home"), leaks: leaks}
	if err := os.MkdirAll(m.home, 0o700); err != nil {
		t.Fatal(err)
	}
	if margin != "" {
		if err := os.WriteFile(m.config, []byte("refresh_margin = \""+margin+"\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m.setEnv()
	leaks.stateDir(m.state)
	return m
}

func (m *mk) setEnv() {
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "HOME", k == "BROWSER", k == "PATH", k == "DISPLAY", k == "WAYLAND_DISPLAY",
			k == "DBUS_SESSION_BUS_ADDRESS", strings.HasPrefix(k, "MAILKEY_"), strings.HasPrefix(k, "XDG_"):
			continue
		}
		m.env = append(m.env, kv)
	}
	m.env = append(m.env,
		"HOME="+m.home,
		"PATH="+filepath.Dir(mailkeyBin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"MAILKEY_CONFIG="+m.config,
		"MAILKEY_STATE_DIR="+m.state,
		"MAILKEY_NO_KEYRING=1",
		"BROWSER=true", // the URL is printed; no real browser starts
		"XDG_CONFIG_HOME="+filepath.Join(m.home, ".config"),
		"XDG_STATE_HOME="+filepath.Join(m.home, ".local", "state"),
	)
}

// clone copies this user's configuration and state (tokens and key) into a new user, as a
// backup or a second machine would hold them.
func (m *mk) clone() *mk {
	m.t.Helper()
	c := newMailkey(m.t, m.leaks, "")
	for _, p := range [][2]string{{m.config, c.config}, {m.state, c.state}} {
		if out, err := exec.Command("cp", "-a", p[0], p[1]).CombinedOutput(); err != nil {
			m.t.Fatalf("copy %s: %v: %s", p[0], err, out)
		}
	}
	return c
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stderr:\n%s", r.code, r.stderr)
}

func (m *mk) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, mailkeyBin, args...)
	cmd.Env = m.env
	cmd.Dir = m.dir
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// record hands a finished command's output to the leak check: stderr always, stdout unless
// the command prints a token on purpose.
func (m *mk) record(args []string, r result) {
	label := "mailkey " + strings.Join(args, " ")
	m.leaks.output("stderr of "+label, r.stderr)
	if len(args) == 0 || args[0] != "token" {
		m.leaks.output("stdout of "+label, r.stdout)
	}
}

// run runs mailkey with args and stdin (may be empty) and waits for it.
func (m *mk) run(ctx context.Context, stdin string, args ...string) result {
	m.t.Helper()
	cmd := m.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		m.t.Fatalf("mailkey %s: %v", strings.Join(args, " "), err)
	}
	r := result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
	m.record(args, r)
	return r
}

// must runs mailkey and fails the test unless it exits 0.
func (m *mk) must(ctx context.Context, stdin string, args ...string) result {
	m.t.Helper()
	r := m.run(ctx, stdin, args...)
	if r.code != 0 {
		m.t.Fatalf("mailkey %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// token runs mailkey token NAME [args] and returns the trimmed output, which it records as a
// secret.
func (m *mk) token(ctx context.Context, name string, args ...string) string {
	m.t.Helper()
	r := m.must(ctx, "", append([]string{"token", name}, args...)...)
	tok := strings.TrimSpace(r.stdout)
	if tok == "" || strings.ContainsAny(tok, " \n") {
		m.t.Fatalf("mailkey token %s printed %d bytes that are not one token", name, len(r.stdout))
	}
	m.leaks.secret("access token", tok)
	return tok
}

// tokenJSON is what mailkey token --json prints.
type tokenJSON struct {
	AccessToken string    `json:"access_token"`
	Expiry      time.Time `json:"expiry"`
}

func (m *mk) tokenJSON(ctx context.Context, name string) tokenJSON {
	m.t.Helper()
	r := m.must(ctx, "", "token", name, "--json")
	var tj tokenJSON
	if err := json.Unmarshal([]byte(r.stdout), &tj); err != nil || tj.AccessToken == "" {
		m.t.Fatalf("mailkey token --json: no access token in the output (%v)", err)
	}
	m.leaks.secret("access token", tj.AccessToken)
	return tj
}

// accountStatus is the part of mailkey status --json the tests look at.
type accountStatus struct {
	Name       string `json:"name"`
	State      string `json:"state"`
	Detail     string `json:"detail"`
	HasRefresh bool   `json:"has_refresh_token"`
	Identity   string `json:"identity"`
}

func (m *mk) status(ctx context.Context, name string) accountStatus {
	m.t.Helper()
	r := m.must(ctx, "", "status", name, "--json")
	var st struct {
		Accounts []accountStatus `json:"accounts"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.Accounts) != 1 {
		m.t.Fatalf("mailkey status %s --json: %v\n%s", name, err, r.stdout)
	}
	return st.Accounts[0]
}

// addAccount runs mailkey add for a generic-provider account on the stack: discovery from the
// issuer, the stack's mail servers (STARTTLS) and CA. extra adds or overrides flags.
func (m *mk) addAccount(ctx context.Context, s *e2e.Stack, name, clientID string, extra ...string) {
	m.t.Helper()
	args := []string{"add", name, "--provider", "generic", "--issuer", s.Issuer, "--client-id", clientID,
		"--email", e2e.Alice, "--imap", s.IMAP, "--pop3", s.POP3, "--smtp", s.Submission, "--ca-file", s.CAFile}
	if len(extra) == 0 {
		extra = []string{"--scope", "openid", "--scope", "email", "--scope", e2e.ScopeMail}
	}
	m.must(ctx, "", append(args, extra...)...)
}

// running is a mailkey process the test talks to while it runs.
type running struct {
	m     *mk
	args  []string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   bytes.Buffer

	mu      sync.Mutex
	lines   []string // complete stderr lines so far
	errb    bytes.Buffer
	changed chan struct{}
	eof     chan struct{}
}

// start starts mailkey with args; its stdin stays open for the test.
func (m *mk) start(ctx context.Context, args ...string) *running {
	m.t.Helper()
	r := &running{m: m, args: args, cmd: m.command(ctx, args...), changed: make(chan struct{}, 1), eof: make(chan struct{})}
	var err error
	if r.stdin, err = r.cmd.StdinPipe(); err != nil {
		m.t.Fatal(err)
	}
	r.cmd.Stdout = &r.out
	pipe, err := r.cmd.StderrPipe()
	if err != nil {
		m.t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	go func() {
		defer close(r.eof)
		br := bufio.NewReader(pipe)
		for {
			line, err := br.ReadString('\n')
			r.mu.Lock()
			r.errb.WriteString(line)
			if strings.HasSuffix(line, "\n") {
				r.lines = append(r.lines, strings.TrimRight(line, "\r\n"))
			}
			r.mu.Unlock()
			select {
			case r.changed <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	m.t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
			r.cmd.Wait()
		}
	})
	return r
}

// waitLine waits for a stderr line for which match returns true and returns that line and
// the lines that follow it so far.
func (r *running) waitLine(ctx context.Context, what string, match func(string) bool) (string, []string) {
	r.m.t.Helper()
	for {
		r.mu.Lock()
		for i, l := range r.lines {
			if match(l) {
				rest := append([]string(nil), r.lines[i+1:]...)
				r.mu.Unlock()
				return l, rest
			}
		}
		stderr := r.errb.String()
		r.mu.Unlock()
		select {
		case <-r.changed:
		case <-r.eof:
			r.m.t.Fatalf("mailkey %s ended before printing %s; stderr:\n%s", strings.Join(r.args, " "), what, stderr)
		case <-ctx.Done():
			r.m.t.Fatalf("mailkey %s did not print %s; stderr:\n%s", strings.Join(r.args, " "), what, stderr)
		}
	}
}

// authorizeURL waits for the authorization URL mailkey prints on its own line.
func (r *running) authorizeURL(ctx context.Context, s *e2e.Stack) string {
	r.m.t.Helper()
	l, _ := r.waitLine(ctx, "an authorization URL", func(l string) bool {
		return strings.HasPrefix(strings.TrimSpace(l), s.Issuer+"/") && strings.Contains(l, "code_challenge=")
	})
	return strings.TrimSpace(l)
}

// wait waits for the process to end.
func (r *running) wait() result {
	r.m.t.Helper()
	r.stdin.Close()
	<-r.eof
	r.cmd.Wait()
	r.mu.Lock()
	res := result{stdout: r.out.String(), stderr: r.errb.String(), code: r.cmd.ProcessState.ExitCode()}
	r.mu.Unlock()
	r.m.record(r.args, res)
	return res
}

// The leak check must be able to fail: a token in stderr or in a state file is found.
func TestLeakCheckFinds(t *testing.T) {
	dir := t.TempDir()
	l := &leakCheck{secrets: map[string]string{}}
	l.secret("access token", "at-0123456789", "short")
	l.secret("refresh token", "rt-0123456789")
	l.output("stderr of mailkey token", "mailkey: error: bad token at-0123456789\n")
	l.output("stderr of mailkey status", "mailkey: short\n")
	if err := os.WriteFile(filepath.Join(dir, "tokens"), []byte("x rt-0123456789 x"), 0o600); err != nil {
		t.Fatal(err)
	}
	l.stateDir(dir)
	got := strings.Join(l.findings(), "\n")
	if !strings.Contains(got, "access token (13 bytes) appears in stderr of mailkey token") ||
		!strings.Contains(got, "refresh token (13 bytes) appears in state file") ||
		strings.Contains(got, "status") || strings.Contains(got, "0123456789") {
		t.Fatalf("findings:\n%s", got)
	}
}
