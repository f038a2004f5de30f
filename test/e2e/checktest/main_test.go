package checktest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	dir, err := os.MkdirTemp("", "mailkey-checktest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "checktest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || len(bytes.TrimSpace(gomod)) == 0 || string(bytes.TrimSpace(gomod)) == os.DevNull {
		fmt.Fprintf(os.Stderr, "checktest: cannot find the module root (go env GOMOD: %v)\n", err)
		return 1
	}
	mailkeyBin = filepath.Join(dir, "mailkey")
	build := exec.Command("go", "build", "-o", mailkeyBin, "./cmd/mailkey")
	build.Dir = filepath.Dir(string(bytes.TrimSpace(gomod)))
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "checktest: go build ./cmd/mailkey: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// leaks collects the secrets a test handled and everything mailkey printed (both streams of
// every command but mailkey token's stdout), and fails the test at its end if any secret
// appears in any output.
type leaks struct {
	mu      sync.Mutex
	secrets map[string]string // secret → what it is
	outputs map[string]string // label → text
}

func newLeaks(t *testing.T) *leaks {
	l := &leaks{secrets: map[string]string{}, outputs: map[string]string{}}
	l.secret("password", e2e.AlicePassword, e2e.BobPassword)
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		tokens := 0
		for _, what := range l.secrets {
			if what == "access token" {
				tokens++
			}
		}
		if tokens == 0 {
			t.Error("the leak check saw no access token: it proves nothing")
		}
		for _, f := range l.findings() {
			t.Error(f)
		}
	})
	return l
}

// findings says which kind of secret appears in which output, without quoting it. l.mu is held.
func (l *leaks) findings() []string {
	var found []string
	for label, text := range l.outputs {
		for s, what := range l.secrets {
			if strings.Contains(text, s) {
				found = append(found, fmt.Sprintf("a %s (%d bytes) appears in %s", what, len(s), label))
			}
		}
	}
	return found
}

// The leak check must be able to fail.
func TestLeakCheckFinds(t *testing.T) {
	l := &leaks{secrets: map[string]string{}, outputs: map[string]string{}}
	l.secret("access token", "at-0123456789", "short")
	l.output("stdout of mailkey test --json", `{"detail":"at-0123456789"}`)
	l.output("stderr of mailkey test", "mailkey: short")
	got := strings.Join(l.findings(), "\n")
	if !strings.Contains(got, "access token (13 bytes) appears in stdout of mailkey test --json") ||
		strings.Contains(got, "stderr") || strings.Contains(got, "0123456789") {
		t.Fatalf("findings:\n%s", got)
	}
}

func (l *leaks) secret(what string, values ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range values {
		if len(v) >= 8 {
			l.secrets[v] = what
		}
	}
}

func (l *leaks) output(label, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outputs[fmt.Sprintf("%s (#%d)", label, len(l.outputs))] = text
}

// mk is one mailkey user: its own configuration, state folder and home.
type mk struct {
	t     *testing.T
	dir   string
	env   []string
	leaks *leaks
}

func newMailkey(t *testing.T, l *leaks) *mk {
	t.Helper()
	dir := t.TempDir()
	m := &mk{t: t, dir: dir, leaks: l}
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	// A one-second margin: a stored token is used until it expires, as in the field.
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte("refresh_margin = \"1s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "HOME" || k == "BROWSER" || strings.HasPrefix(k, "MAILKEY_") || strings.HasPrefix(k, "XDG_") {
			continue
		}
		m.env = append(m.env, kv)
	}
	m.env = append(m.env, "HOME="+home, "MAILKEY_CONFIG="+filepath.Join(dir, "config.toml"),
		"MAILKEY_STATE_DIR="+filepath.Join(dir, "state"), "MAILKEY_NO_KEYRING=1", "BROWSER=true",
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_STATE_HOME="+filepath.Join(home, ".local", "state"))
	return m
}

// on returns m reporting to t, for use in a subtest.
func (m *mk) on(t *testing.T) *mk {
	c := *m
	c.t = t
	return &c
}

// clone copies the configuration and state, as a second machine would hold them.
func (m *mk) clone() *mk {
	m.t.Helper()
	c := newMailkey(m.t, m.leaks)
	for _, p := range []string{"config.toml", "state"} {
		os.RemoveAll(filepath.Join(c.dir, p))
		if out, err := exec.Command("cp", "-a", filepath.Join(m.dir, p), filepath.Join(c.dir, p)).CombinedOutput(); err != nil {
			m.t.Fatalf("copy %s: %v: %s", p, err, out)
		}
	}
	return c
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

func (m *mk) run(ctx context.Context, stdin string, args ...string) result {
	m.t.Helper()
	cmd := exec.CommandContext(ctx, mailkeyBin, args...)
	cmd.Env, cmd.Dir = m.env, m.dir
	cmd.WaitDelay = 10 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		m.t.Fatalf("mailkey %s: %v", strings.Join(args, " "), err)
	}
	r := result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
	label := "mailkey " + strings.Join(args, " ")
	m.leaks.output("stderr of "+label, r.stderr)
	if args[0] != "token" {
		m.leaks.output("stdout of "+label, r.stdout)
	}
	return r
}

func (m *mk) must(ctx context.Context, stdin string, args ...string) result {
	m.t.Helper()
	r := m.run(ctx, stdin, args...)
	if r.code != 0 {
		m.t.Fatalf("mailkey %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// add adds a generic-provider account on the stack for the public client; servers and extra
// flags are appended as given (--imap URL …, --ca-file …, --scope …).
func (m *mk) add(ctx context.Context, s *e2e.Stack, name, email string, args ...string) {
	m.t.Helper()
	base := []string{"add", name, "--provider", "generic", "--issuer", s.Issuer, "--client-id", e2e.ClientPublic, "--email", email}
	m.must(ctx, "", append(base, args...)...)
}

// login imports a refresh token for user (alice unless told), minted with scopes (the
// defaults unless told), and returns the access token mailkey then hands out.
func (m *mk) login(ctx context.Context, s *e2e.Stack, name, user, password string, scopes ...string) string {
	m.t.Helper()
	tok, err := s.AuthCodeToken(ctx, user, password, scopes...)
	if err != nil {
		m.t.Fatal(err)
	}
	m.leaks.secret("refresh token", tok.RefreshToken)
	m.leaks.secret("access token", tok.AccessToken)
	m.must(ctx, tok.RefreshToken+"\n", "login", name, "--import")
	at := strings.TrimSpace(m.must(ctx, "", "token", name).stdout)
	m.leaks.secret("access token", at)
	return at
}

// report is mailkey test --json.
type report struct {
	Account string `json:"account"`
	Passed  bool   `json:"passed"`
	Results []struct {
		Protocol string `json:"protocol"`
		Server   string `json:"server"`
		Passed   bool   `json:"passed"`
		Steps    []step `json:"steps"`
	} `json:"protocols"`
}

type step struct {
	Name      string   `json:"name"`
	Status    string   `json:"status"`
	Detail    string   `json:"detail"`
	Duration  *float64 `json:"duration_ms"`
	Diagnosis *struct {
		ID    string `json:"id"`
		Cause string `json:"cause"`
		Fix   string `json:"fix"`
	} `json:"diagnosis"`
}

// test runs mailkey test --json with args and decodes the report.
func (m *mk) test(ctx context.Context, args ...string) (report, result) {
	m.t.Helper()
	r := m.run(ctx, "", append([]string{"test", "--json"}, args...)...)
	var rep report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		m.t.Fatalf("mailkey test --json: %v\n%s", err, r)
	}
	return rep, r
}

// diagnosis returns the step whose diagnosis the test looks at: the first failed step, else
// the first warning.
func (rep report) diagnosed(proto string) *step {
	for _, res := range rep.Results {
		if res.Protocol != proto {
			continue
		}
		for _, status := range []string{"fail", "warn"} {
			for i := range res.Steps {
				if res.Steps[i].Status == status && res.Steps[i].Diagnosis != nil {
					return &res.Steps[i]
				}
			}
		}
	}
	return nil
}

// wantDiagnosis checks that proto's checklist stopped (or warned) at stepName with diagnosis id.
func wantDiagnosis(t *testing.T, rep report, r result, proto, stepName, id string) {
	t.Helper()
	s := rep.diagnosed(proto)
	if s == nil {
		t.Fatalf("%s: no diagnosis in the report\n%s", proto, r)
	}
	if s.Name != stepName || s.Diagnosis.ID != id {
		t.Fatalf("%s: diagnosis %q at step %q, want %q at %q\n%s", proto, s.Diagnosis.ID, s.Name, id, stepName, r)
	}
	t.Logf("%s %s: %s\n  cause: %s\n  fix: %s", proto, s.Name, s.Detail, s.Diagnosis.Cause, s.Diagnosis.Fix)
}
