package servetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
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
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

func TestMain(m *testing.M) { os.Exit(mailkeytest.Main(m)) }

// mk is one mailkey user, with the commands only these tests need.
type mk struct{ *mailkeytest.Env }

// addPassword runs mailkey password add and returns the password it printed.
func (m *mk) addPassword(ctx context.Context, name, label string) string {
	m.T.Helper()
	r := m.Must(ctx, "", "password", "add", name, "--label", label)
	pw := strings.TrimSpace(r.Stdout)
	if strings.Count(r.Stdout, "\n") != 1 || len(pw) < 20 {
		m.T.Fatalf("password add printed %d bytes on %d lines, want one password alone", len(r.Stdout), strings.Count(r.Stdout, "\n"))
	}
	m.Leaks.Secret("app password", pw, strings.ReplaceAll(pw, "-", ""))
	return pw
}

// expiresIn returns how long the access token mailkey token hands out for name is still valid
// (mailkey token refreshes it first if it is about to expire).
func (m *mk) expiresIn(ctx context.Context, name string) time.Duration {
	m.T.Helper()
	r := m.Must(ctx, "", "token", name, "--json")
	var tj struct {
		AccessToken string    `json:"access_token"`
		Expiry      time.Time `json:"expiry"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &tj); err != nil || tj.AccessToken == "" || tj.Expiry.IsZero() {
		m.T.Fatalf("mailkey token --json: no access token or expiry in the output (%v)", err)
	}
	m.Leaks.Secret("access token", tj.AccessToken)
	return time.Until(tj.Expiry)
}

// addAccount adds a generic-provider account for user on the stack (STARTTLS servers, the
// stack's CA) and imports a refresh token for it.
func (m *mk) addAccount(ctx context.Context, s *e2e.Stack, name, user, password string) {
	m.T.Helper()
	m.AddAccount(ctx, s, name, e2e.ClientPublic, user)
	m.Import(ctx, s, name, user, password)
}

// serving is a running mailkey serve.
type serving struct {
	m          *mk
	cmd        *exec.Cmd
	addr       map[string]string // listener → address
	certFile   string
	mu         sync.Mutex
	stderr     bytes.Buffer
	changed    chan struct{} // a line was added to stderr
	eof        chan struct{}
	stopped    bool
	finalError string
}

// listening is the line serve logs for each listener once every one is bound.
var listening = regexp.MustCompile(`msg=listening listener=(\S+) addr=(\S+)`)

// serve starts mailkey serve with every listener on a loopback port the kernel picks (no port
// is chosen ahead, so none can be taken meanwhile), reads the addresses from its log and
// waits until its status page answers.
func (m *mk) serve(ctx context.Context, extra ...string) *serving {
	m.T.Helper()
	names := []string{"imap", "imaps", "pop3", "pop3s", "smtp", "smtps", "status"}
	s := &serving{m: m, addr: map[string]string{}, changed: make(chan struct{}, 1), eof: make(chan struct{}),
		certFile: filepath.Join(m.State, "proxy-cert.pem")}
	args := []string{"serve", "--shutdown-timeout", "5s"}
	for _, n := range names {
		args = append(args, "--"+n, "127.0.0.1:0")
	}
	args = append(args, extra...)
	s.cmd = m.Command(context.WithoutCancel(ctx), args...)
	pipe, err := s.cmd.StderrPipe()
	if err != nil {
		m.T.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		m.T.Fatal(err)
	}
	go func() {
		defer close(s.eof)
		br := bufio.NewReader(pipe)
		for {
			line, err := br.ReadString('\n')
			s.mu.Lock()
			s.stderr.WriteString(line)
			s.mu.Unlock()
			select {
			case s.changed <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	m.T.Cleanup(func() { s.stop() })
	wait := func(what string) {
		m.T.Helper()
		select {
		case <-s.changed:
		case <-s.eof:
			m.T.Fatalf("mailkey serve ended at start:\n%s", s.logs())
		case <-ctx.Done():
			m.T.Fatalf("mailkey serve did not %s:\n%s", what, s.logs())
		case <-time.After(50 * time.Millisecond): // the pace of the polling, not a bound
		}
	}
	for len(s.addr) < len(names) {
		for _, mm := range listening.FindAllStringSubmatch(s.logs(), -1) {
			s.addr[mm[1]] = mm[2]
		}
		if len(s.addr) < len(names) {
			wait("log the addresses of its listeners")
		}
	}
	for {
		resp, err := http.Get("http://" + s.addr["status"] + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		wait("answer on " + s.addr["status"])
	}
	return s
}

func (s *serving) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// waitLog waits until serve has logged a line holding text; serve ending first, or the
// test's deadline, fails the test.
func (s *serving) waitLog(ctx context.Context, text string) {
	s.m.T.Helper()
	for !strings.Contains(s.logs(), text) {
		select {
		case <-s.changed:
		case <-s.eof:
			s.m.T.Fatalf("mailkey serve ended before it logged %q:\n%s", text, s.logs())
		case <-ctx.Done():
			s.m.T.Fatalf("mailkey serve did not log %q:\n%s", text, s.logs())
		}
	}
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
	out, err := pythonCmd(t, ctx, script, args...).CombinedOutput()
	return string(out), err
}

// pythonCmd is the command python runs, for a test that gives it standard input.
func pythonCmd(t *testing.T, ctx context.Context, script string, args ...string) *exec.Cmd {
	t.Helper()
	py := mailkeytest.NeedProgram(t, "python3", "python3")
	return exec.CommandContext(ctx, py, append([]string{script}, args...)...)
}

func writeFile(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
}

// runProgram runs a mail client as m's user and returns its combined output.
func runProgram(ctx context.Context, m *mk, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Dir = m.Vars, m.Home
	out, err := cmd.CombinedOutput()
	return string(out), err
}
