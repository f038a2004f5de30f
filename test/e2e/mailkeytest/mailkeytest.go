// Package mailkeytest runs the mailkey binary in end-to-end tests against the stack of package
// e2e: it builds the binary once per test binary, gives each simulated user a configuration,
// state folder and home of their own, runs mailkey commands as that user, and checks that no
// secret the test handled shows up in what mailkey printed or stored in plain text.
//
// A test package wires it up with
//
//	func TestMain(m *testing.M) { os.Exit(mailkeytest.Main(m)) }
package mailkeytest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/testwait"
	"github.com/mailkey/mailkey/test/e2e"
)

// waitDelay bounds how long a killed command may hold its output pipes open.
const waitDelay = 10 * time.Second

// bin is the binary under test, set by Main.
var bin string

// Main builds the mailkey binary into a temporary folder, runs the tests and removes the
// folder. It returns the exit code for os.Exit.
func Main(m *testing.M) int {
	path, cleanup, err := BuildBinary()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mailkeytest:", err)
		return 1
	}
	defer cleanup()
	bin = path
	return m.Run()
}

// BuildBinary builds ./cmd/mailkey of the enclosing module into a temporary folder of its
// own (so that the folder can go first on PATH) and returns its path and the function that
// removes it.
func BuildBinary() (path string, cleanup func(), err error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	mod := string(bytes.TrimSpace(gomod))
	if err != nil || mod == "" || mod == os.DevNull {
		return "", nil, fmt.Errorf("cannot find the module root (go env GOMOD: %v)", err)
	}
	dir, err := os.MkdirTemp("", "mailkey-e2e-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	path = filepath.Join(dir, "bin", "mailkey")
	build := exec.Command("go", "build", "-o", path, "./cmd/mailkey")
	build.Dir = filepath.Dir(mod)
	if out, err := build.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("go build ./cmd/mailkey: %v\n%s", err, out)
	}
	return path, cleanup, nil
}

// Bin returns the path of the binary Main built.
func Bin() string { return bin }

// Context returns a context that ends a little before the test binary's deadline (go test
// -timeout) or when t ends: a test waits as long as the machine needs, and a broken one still
// fails with its own message. Nothing asserts on time.
func Context(t *testing.T) context.Context { return testwait.Context(t) }

// Env is one user of mailkey: a configuration file, a state folder and a home of its own,
// and the environment that points mailkey at them (no keyring, no browser, the binary first
// on PATH). Every command's output goes to Leaks.
type Env struct {
	T      *testing.T
	Dir    string // holds the rest; commands run here
	Config string // MAILKEY_CONFIG
	State  string // MAILKEY_STATE_DIR
	Home   string // HOME
	Vars   []string
	Leaks  *Leaks
}

// New prepares a fresh mailkey user whose state folder leaks watches. config, when not
// empty, is written as the configuration file before any command runs.
func New(t *testing.T, leaks *Leaks, config string) *Env {
	t.Helper()
	dir := t.TempDir()
	e := &Env{T: t, Dir: dir, Config: filepath.Join(dir, "config.toml"), State: filepath.Join(dir, "state"),
		Home: filepath.Join(dir, "home"), Leaks: leaks}
	if err := os.MkdirAll(e.Home, 0o700); err != nil {
		t.Fatal(err)
	}
	if config != "" {
		if err := os.WriteFile(e.Config, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "HOME", k == "BROWSER", k == "PATH", k == "DISPLAY", k == "WAYLAND_DISPLAY",
			k == "DBUS_SESSION_BUS_ADDRESS", strings.HasPrefix(k, "MAILKEY_"), strings.HasPrefix(k, "XDG_"):
			continue
		}
		e.Vars = append(e.Vars, kv)
	}
	e.Vars = append(e.Vars,
		"HOME="+e.Home,
		"PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"MAILKEY_CONFIG="+e.Config,
		"MAILKEY_STATE_DIR="+e.State,
		"MAILKEY_NO_KEYRING=1",
		"BROWSER=true", // the URL is printed; no real browser starts
		"XDG_CONFIG_HOME="+filepath.Join(e.Home, ".config"),
		"XDG_STATE_HOME="+filepath.Join(e.Home, ".local", "state"),
	)
	leaks.StateDir(e.State)
	return e
}

// NeedProgram returns the path of a program the test drives (a mail client, python3), or
// calls Missing when it is not on PATH.
func NeedProgram(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name, pkg)
	}
	return p
}

// Missing skips the test for lack of what, or fails it where MAILKEY_E2E=1 (CI), since
// test/e2e/install-deps.sh installs the Debian package pkg there.
func Missing(t *testing.T, what, pkg string) {
	t.Helper()
	if os.Getenv("MAILKEY_E2E") == "1" {
		t.Fatalf("MAILKEY_E2E=1 but %s is missing: install %s (test/e2e/install-deps.sh)", what, pkg)
	}
	t.Skipf("%s is missing: install %s", what, pkg)
}

// RefreshMargin is a configuration that sets refresh_margin to d ("1s": a stored token is
// used until it expires, as in the field).
func RefreshMargin(d string) string { return "refresh_margin = \"" + d + "\"\n" }

// On returns e reporting to t, for use in a subtest.
func (e *Env) On(t *testing.T) *Env {
	c := *e
	c.T = t
	return &c
}

// Clone copies this user's configuration and state (tokens and key) into a new user, as a
// backup or a second machine would hold them.
func (e *Env) Clone() *Env {
	e.T.Helper()
	c := New(e.T, e.Leaks, "")
	for _, p := range [][2]string{{e.Config, c.Config}, {e.State, c.State}} {
		os.RemoveAll(p[1])
		if out, err := exec.Command("cp", "-a", p[0], p[1]).CombinedOutput(); err != nil {
			e.T.Fatalf("copy %s: %v: %s", p[0], err, out)
		}
	}
	return c
}

// Result is how a mailkey command ended.
type Result struct {
	Stdout, Stderr string
	Code           int

	secretStdout bool // the command prints a secret on stdout on purpose
}

// String shows the exit code and both streams, for failure messages; the stdout of a command
// that prints a secret on purpose is left out.
func (r Result) String() string {
	stdout := r.Stdout
	if r.secretStdout && stdout != "" {
		stdout = fmt.Sprintf("(%d bytes, not shown: the command prints a secret)\n", len(stdout))
	}
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, stdout, r.Stderr)
}

// Command returns mailkey with args, to run as this user; its output is not recorded (see
// Record).
func (e *Env) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env, cmd.Dir = e.Vars, e.Dir
	cmd.WaitDelay = waitDelay
	return cmd
}

// Record hands a finished command's output to the leak check: stderr always, stdout unless
// the command prints a secret on purpose (mailkey token, mailkey password add).
func (e *Env) Record(args []string, r Result) {
	label := "mailkey " + strings.Join(args, " ")
	e.Leaks.Output("stderr of "+label, r.Stderr)
	if !printsSecret(args) {
		e.Leaks.Output("stdout of "+label, r.Stdout)
	}
}

func printsSecret(args []string) bool {
	return len(args) > 0 && args[0] == "token" || len(args) > 1 && args[0] == "password" && args[1] == "add"
}

// Run runs mailkey with args and stdin (may be empty), waits for it and records its output.
func (e *Env) Run(ctx context.Context, stdin string, args ...string) Result {
	e.T.Helper()
	cmd := e.Command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		e.T.Fatalf("mailkey %s: %v", strings.Join(args, " "), err)
	}
	r := Result{Stdout: out.String(), Stderr: errb.String(), Code: cmd.ProcessState.ExitCode(), secretStdout: printsSecret(args)}
	e.Record(args, r)
	return r
}

// Must is Run that fails the test unless mailkey exits 0.
func (e *Env) Must(ctx context.Context, stdin string, args ...string) Result {
	e.T.Helper()
	r := e.Run(ctx, stdin, args...)
	if r.Code != 0 {
		e.T.Fatalf("mailkey %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// Token runs mailkey token NAME [args] and returns the trimmed output, which it records as a
// secret.
func (e *Env) Token(ctx context.Context, name string, args ...string) string {
	e.T.Helper()
	r := e.Must(ctx, "", append([]string{"token", name}, args...)...)
	tok := strings.TrimSpace(r.Stdout)
	if tok == "" || strings.ContainsAny(tok, " \n") {
		e.T.Fatalf("mailkey token %s printed %d bytes that are not one token", name, len(r.Stdout))
	}
	e.Leaks.Secret("access token", tok)
	return tok
}

// Add runs mailkey add for a generic-provider account of email at the stack's provider;
// args adds servers and other flags as given.
func (e *Env) Add(ctx context.Context, s *e2e.Stack, name, clientID, email string, args ...string) {
	e.T.Helper()
	base := []string{"add", name, "--provider", "generic", "--issuer", s.Issuer, "--client-id", clientID, "--email", email}
	e.Must(ctx, "", append(base, args...)...)
}

// AddAccount is Add with the stack's mail servers (STARTTLS) and CA. extra adds or overrides
// flags; without it the account asks for the openid, email and mail scopes.
func (e *Env) AddAccount(ctx context.Context, s *e2e.Stack, name, clientID, email string, extra ...string) {
	e.T.Helper()
	if len(extra) == 0 {
		extra = []string{"--scope", "openid", "--scope", "email", "--scope", e2e.ScopeMail}
	}
	args := []string{"--imap", s.IMAP, "--pop3", s.POP3, "--smtp", s.Submission, "--ca-file", s.CAFile}
	e.Add(ctx, s, name, clientID, email, append(args, extra...)...)
}

// Import logs account name in by importing a refresh token the provider minted for user
// with scopes (the stack's defaults unless told); both tokens become secrets.
func (e *Env) Import(ctx context.Context, s *e2e.Stack, name, user, password string, scopes ...string) {
	e.T.Helper()
	tok, err := s.AuthCodeToken(ctx, user, password, scopes...)
	if err != nil {
		e.T.Fatal(err)
	}
	e.Leaks.Secret("refresh token", tok.RefreshToken)
	e.Leaks.Secret("access token", tok.AccessToken)
	e.Must(ctx, tok.RefreshToken+"\n", "login", name, "--import")
}

// RefreshGrants counts the refresh_token grants the stack's provider has answered so far,
// from the lines server.mjs logs with OP_DEBUG=1 (e2e.WithOPEnv("OP_DEBUG", "1")).
func RefreshGrants(t *testing.T, s *e2e.Stack) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir, "log", "op.log"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == "grant.success refresh_token" {
			n++
		}
	}
	return n
}

// RunConcurrent starts n mailkey processes with args at the same moment, as many mail clients
// do, waits for all of them and returns their results in start order. Each is recorded for the
// leak check, and what a process prints on stdout counts as a secret (a token).
func (e *Env) RunConcurrent(ctx context.Context, n int, args ...string) []Result {
	e.T.Helper()
	results := make([]Result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			cmd := e.Command(ctx, args...)
			var out, errb strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errb
			<-start
			err := cmd.Run()
			results[i] = Result{Stdout: out.String(), Stderr: errb.String(), Code: -1}
			if cmd.ProcessState != nil {
				results[i].Code = cmd.ProcessState.ExitCode()
			} else {
				results[i].Stderr += err.Error()
			}
		})
	}
	close(start)
	wg.Wait()
	for _, r := range results {
		e.Record(args, r)
		if tok := strings.TrimSpace(r.Stdout); tok != "" {
			e.Leaks.Secret("output of mailkey "+args[0], tok)
		}
	}
	return results
}
