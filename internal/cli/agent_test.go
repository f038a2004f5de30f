package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/agent"
	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/internal/testwait"
)

const agentTestPassphrase = "agent-test-passphrase"

// agentFixture is a passphrase-protected store with one account, whose
// token endpoint counts refreshes and answers "fresh-token-N".
type agentFixture struct {
	dir, state, cfgPath string
	st                  *store.FileStore
	cfg                 *config.Config
	refreshes           atomic.Int32
}

func newAgentFixture(t *testing.T) *agentFixture {
	t.Helper()
	f := &agentFixture{dir: t.TempDir()}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() != nil || r.PostForm.Get("grant_type") != "refresh_token" {
			http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
			return
		}
		n := f.refreshes.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"fresh-token-`+string(rune('0'+n))+`","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(ts.Close)
	f.state = filepath.Join(f.dir, "state")
	cfgPath := filepath.Join(f.dir, "config.toml")
	f.cfgPath = cfgPath
	doc := "[accounts.work]\nprovider = \"generic\"\nemail = \"w@example.test\"\nclient_id = \"cid\"\n" +
		"auth_url = \"" + ts.URL + "/auth\"\ntoken_url = \"" + ts.URL + "/token\"\n" +
		"[accounts.new]\nprovider = \"generic\"\nemail = \"n@example.test\"\nclient_id = \"cid\"\n" +
		"auth_url = \"" + ts.URL + "/auth\"\ntoken_url = \"" + ts.URL + "/token\"\n"
	if err := os.WriteFile(cfgPath, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MAILKEY_CONFIG", cfgPath)
	t.Setenv(store.EnvStateDir, f.state)
	t.Setenv(store.EnvNoKeyring, "1")
	t.Setenv(store.EnvPassphrase, agentTestPassphrase)
	t.Setenv(envNoAgent, "")
	var err error
	if f.cfg, err = config.Load(cfgPath); err != nil {
		t.Fatal(err)
	}
	f.st, err = store.OpenFile(f.state, &store.FileOptions{NoKeyring: true, Passphrase: agentTestPassphrase, ScryptWorkFactor: 10})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *agentFixture) put(t *testing.T, access string, expiry time.Time) {
	t.Helper()
	if err := f.st.Put(context.Background(), &store.Record{Account: "work", AccessToken: access, TokenType: "Bearer",
		RefreshToken: "refresh-token-1", Expiry: expiry}); err != nil {
		t.Fatal(err)
	}
}

// startAgent runs the agent as mailkey agent does, in this process.
func (f *agentFixture) startAgent(t *testing.T) (stop func()) {
	t.Helper()
	e := &env{ctx: context.Background(), stdout: io.Discard, stderr: io.Discard, life: &lifecycle{}}
	log := slog.New(slog.DiscardHandler)
	srv, err := agent.Listen(f.st.Dir(), log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(newAgentHandler(e.accounts(f.cfg, f.cfg.Accounts, f.st, log), log))
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			srv.Close()
			<-done
			e.life.settle(io.Discard)
		}
	}
	t.Cleanup(stop)
	return stop
}

func runAgentCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, strings.NewReader(""), &out, &errb)
	waitRefreshers()
	return out.String(), errb.String(), code
}

// TestTokenThroughAgent: with an agent running, mailkey token gets the
// token without opening the store (a wrong passphrase does not matter),
// prints it by the same output rules, and words failures as before.
func TestTokenThroughAgent(t *testing.T) {
	f := newAgentFixture(t)
	f.put(t, "stored-token-1", time.Now().Add(time.Hour))
	f.startAgent(t)
	t.Setenv(store.EnvPassphrase, "wrong passphrase")

	out, errs, code := runAgentCLI(t, "token", "work")
	if code != 0 || out != "stored-token-1\n" || errs != "" {
		t.Fatalf("token through the agent: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	out, _, code = runAgentCLI(t, "token", "work", "--sasl", "xoauth2", "--json")
	if code != 0 || !strings.Contains(out, `"mechanism": "xoauth2"`) || !strings.Contains(out, `"email": "w@example.test"`) {
		t.Fatalf("token --sasl --json through the agent: exit %d, %s", code, out)
	}
	// The configuration decides unknown accounts, before any agent.
	_, errs, code = runAgentCLI(t, "token", "nosuch")
	if code != 1 || !strings.Contains(errs, `mailkey: error: no account "nosuch"`) {
		t.Errorf("unknown account: exit %d, %s", code, errs)
	}
	// The agent words a missing login as mailkey token does.
	_, errs, code = runAgentCLI(t, "token", "new")
	if code != 1 || errs != "mailkey: error: account new has no token yet\nmailkey: hint: mailkey login new\n" {
		t.Errorf("account without a login: exit %d, %q", code, errs)
	}
	// An expired token is refreshed by the agent.
	f.put(t, "stored-token-2", time.Now().Add(-time.Minute))
	out, errs, code = runAgentCLI(t, "token", "work")
	if code != 0 || out != "fresh-token-1\n" || f.refreshes.Load() != 1 {
		t.Fatalf("expired token through the agent: exit %d, %q, %s, %d refreshes", code, out, errs, f.refreshes.Load())
	}
	// A due one is printed at once and refreshed behind.
	f.put(t, "stored-token-3", time.Now().Add(time.Minute))
	if out, _, _ = runAgentCLI(t, "token", "work"); out != "stored-token-3\n" {
		t.Fatalf("due token through the agent: %q", out)
	}
	// The refresh answer is stored a moment after the endpoint counts it.
	for deadline := time.Now().Add(time.Minute); out != "fresh-token-2\n"; {
		if time.Now().After(deadline) {
			t.Fatalf("after the background refresh: %q", out)
		}
		time.Sleep(10 * time.Millisecond)
		out, _, _ = runAgentCLI(t, "token", "work")
	}
	if n := f.refreshes.Load(); n != 2 {
		t.Errorf("%d refreshes, want 2", n)
	}
}

// TestTokenWithoutAgent: without an agent (or with MAILKEY_NO_AGENT=1)
// mailkey token reads the store itself, so the passphrase matters again.
func TestTokenWithoutAgent(t *testing.T) {
	f := newAgentFixture(t)
	f.put(t, "stored-token-1", time.Now().Add(time.Hour))
	if out, errs, code := runAgentCLI(t, "token", "work"); code != 0 || out != "stored-token-1\n" {
		t.Fatalf("token without an agent: exit %d, %q, %s", code, out, errs)
	}
	stop := f.startAgent(t)
	t.Setenv(store.EnvPassphrase, "wrong passphrase")
	t.Setenv(envNoAgent, "1")
	if _, errs, code := runAgentCLI(t, "token", "work"); code == 0 || !strings.Contains(errs, "passphrase") {
		t.Fatalf("MAILKEY_NO_AGENT=1 with a wrong passphrase: exit %d, %s", code, errs)
	}
	t.Setenv(envNoAgent, "")
	// An account added after the agent started is read from the store.
	b, err := os.ReadFile(f.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	later := strings.ReplaceAll(strings.SplitN(string(b), "[accounts.new]", 2)[1], "n@example.test", "l@example.test")
	if err := os.WriteFile(f.cfgPath, append(b, "[accounts.later]"+later...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := runAgentCLI(t, "token", "later"); code == 0 || !strings.Contains(errs, "passphrase") {
		t.Fatalf("account unknown to the agent, with a wrong passphrase: exit %d, %s", code, errs)
	}
	if out, _, code := runAgentCLI(t, "token", "work"); code != 0 || out != "stored-token-1\n" {
		t.Fatalf("the agent after a request for an unknown account: exit %d, %q", code, out)
	}
	stop()
	if _, errs, code := runAgentCLI(t, "token", "work"); code == 0 || !strings.Contains(errs, "passphrase") {
		t.Fatalf("after the agent stopped, with a wrong passphrase: exit %d, %s", code, errs)
	}
}

// TestAgentNotifiesSystemd: mailkey agent under a Type=notify unit says READY=1 once its
// socket answers (a connection at that moment succeeds), and STOPPING=1 when it stops.
func TestAgentNotifiesSystemd(t *testing.T) {
	f := newAgentFixture(t)
	f.put(t, "stored-token-1", time.Now().Add(time.Hour))
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	next := func() string {
		t.Helper()
		conn.SetReadDeadline(testwait.Deadline(t))
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("nothing on NOTIFY_SOCKET: %v", err)
		}
		return string(buf[:n])
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() { done <- run(ctx, []string{"agent"}, strings.NewReader(""), io.Discard, &errb) }()

	msg := next()
	path, ok := strings.CutPrefix(msg, "READY=1\nSTATUS=answering on ")
	if !ok {
		t.Fatalf("first message %q, want READY=1 with the socket", msg)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("agent socket right after READY=1: %v", err)
	}
	c.Close()
	cancel()
	if msg := next(); msg != "STOPPING=1" {
		t.Errorf("message at the stop %q", msg)
	}
	if code := <-done; code != 0 {
		t.Errorf("agent exited %d:\n%s", code, errb.String())
	}
}
