package clitest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

func TestMain(m *testing.M) { os.Exit(mailkeytest.Main(m)) }

// mk is one user of mailkey, with the commands only these tests need.
type mk struct{ *mailkeytest.Env }

// newMailkey prepares a fresh mailkey user. margin, when not empty, is written as
// refresh_margin before any account is added.
func newMailkey(t *testing.T, leaks *mailkeytest.Leaks, margin string) *mk {
	t.Helper()
	config := ""
	if margin != "" {
		config = mailkeytest.RefreshMargin(margin)
	}
	return &mk{mailkeytest.New(t, leaks, config)}
}

// aliceLoggedIn starts a stack whose access tokens live an hour, and a mailkey user whose
// account acct is logged in as alice with the public client; the leak check requires a
// secret to have been seen.
func aliceLoggedIn(t *testing.T, acct string) (*e2e.Stack, context.Context, *mk) {
	t.Helper()
	s := e2e.Start(t, e2e.WithAccessTokenTTL(time.Hour))
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("", 1)
	m := newMailkey(t, leaks, "")
	m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
	m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	return s, ctx, m
}

// clone copies this user's configuration and state into a new user.
func (m *mk) clone() *mk { return &mk{m.Clone()} }

// tokenJSON is what mailkey token --json prints.
type tokenJSON struct {
	AccessToken string    `json:"access_token"`
	Expiry      time.Time `json:"expiry"`
}

func (m *mk) tokenJSON(ctx context.Context, name string) tokenJSON {
	m.T.Helper()
	r := m.Must(ctx, "", "token", name, "--json")
	var tj tokenJSON
	if err := json.Unmarshal([]byte(r.Stdout), &tj); err != nil || tj.AccessToken == "" {
		m.T.Fatalf("mailkey token --json: no access token in the output (%v)", err)
	}
	m.Leaks.Secret("access token", tj.AccessToken)
	return tj
}

// accountStatus is the part of mailkey status --json the tests look at.
type accountStatus struct {
	Name       string    `json:"name"`
	State      string    `json:"state"`
	Expiry     time.Time `json:"expiry"`
	Detail     string    `json:"detail"`
	HasRefresh bool      `json:"has_refresh_token"`
	Identity   string    `json:"identity"`
	Scopes     []string  `json:"scopes"`
	Warnings   []string  `json:"warnings"`
}

func (m *mk) status(ctx context.Context, name string) accountStatus {
	m.T.Helper()
	r := m.Must(ctx, "", "status", name, "--json")
	var st struct {
		Accounts []accountStatus `json:"accounts"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil || len(st.Accounts) != 1 {
		m.T.Fatalf("mailkey status %s --json: %v\n%s", name, err, r.Stdout)
	}
	return st.Accounts[0]
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
	m.T.Helper()
	r := &running{m: m, args: args, cmd: m.Command(ctx, args...), changed: make(chan struct{}, 1), eof: make(chan struct{})}
	// Its own process group, so that a test can signal it as a terminal signals a foreground job.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var err error
	if r.stdin, err = r.cmd.StdinPipe(); err != nil {
		m.T.Fatal(err)
	}
	r.cmd.Stdout = &r.out
	pipe, err := r.cmd.StderrPipe()
	if err != nil {
		m.T.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		m.T.Fatal(err)
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
	m.T.Cleanup(func() {
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
	r.m.T.Helper()
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
			r.m.T.Fatalf("mailkey %s ended before printing %s; stderr:\n%s", strings.Join(r.args, " "), what, stderr)
		case <-ctx.Done():
			r.m.T.Fatalf("mailkey %s did not print %s; stderr:\n%s", strings.Join(r.args, " "), what, stderr)
		}
	}
}

// authorizeURL waits for the authorization URL mailkey prints on its own line.
func (r *running) authorizeURL(ctx context.Context, s *e2e.Stack) string {
	r.m.T.Helper()
	l, _ := r.waitLine(ctx, "an authorization URL", func(l string) bool {
		return strings.HasPrefix(strings.TrimSpace(l), s.Issuer+"/") && strings.Contains(l, "code_challenge=")
	})
	return strings.TrimSpace(l)
}

// wait waits for the process to end.
func (r *running) wait() mailkeytest.Result {
	r.m.T.Helper()
	r.stdin.Close()
	<-r.eof
	r.cmd.Wait()
	r.mu.Lock()
	res := mailkeytest.Result{Stdout: r.out.String(), Stderr: r.errb.String(), Code: r.cmd.ProcessState.ExitCode()}
	r.mu.Unlock()
	r.m.Record(r.args, res)
	return res
}
