package servetest

import (
	"bufio"
	"bytes"
	"context"
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
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// testTimeout bounds one top-level test; nothing asserts on time.
const testTimeout = 5 * time.Minute

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

// addAccount adds a generic-provider account for user on the stack (STARTTLS servers, the
// stack's CA) and imports a refresh token for it.
func (m *mk) addAccount(ctx context.Context, s *e2e.Stack, name, user, password string) {
	m.T.Helper()
	m.AddAccount(ctx, s, name, e2e.ClientPublic, user)
	m.Import(ctx, s, name, user, password)
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
	m.T.Helper()
	names := []string{"imap", "imaps", "pop3", "pop3s", "smtp", "smtps", "status"}
	addrs := freeAddrs(m.T, len(names))
	s := &serving{m: m, addr: map[string]string{}, eof: make(chan struct{}), certFile: filepath.Join(m.State, "proxy-cert.pem")}
	args := []string{"serve", "--shutdown-timeout", "5s"}
	for i, n := range names {
		s.addr[n] = addrs[i]
		args = append(args, "--"+n, addrs[i])
	}
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
			if err != nil {
				return
			}
		}
	}()
	m.T.Cleanup(func() { s.stop() })
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
			m.T.Fatalf("mailkey serve ended at start:\n%s", s.logs())
		case <-ctx.Done():
			m.T.Fatalf("mailkey serve did not answer on %s:\n%s", s.addr["status"], s.logs())
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
	py := mailkeytest.NeedProgram(t, "python3", "python3")
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

// runProgram runs a mail client as m's user and returns its combined output.
func runProgram(ctx context.Context, m *mk, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Dir = m.Vars, m.Home
	out, err := cmd.CombinedOutput()
	return string(out), err
}
