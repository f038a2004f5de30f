package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testToken stands for a secret: no log line may hold it.
const testToken = "secret-access-token-123456"

// testTimeout bounds waits that only keep a broken test from hanging.
const testTimeout = time.Minute

// lockedBuffer is a log sink safe for the server's goroutines.
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

// privateDir is a new 0700 folder, as state folders are.
func privateDir(t *testing.T) string {
	t.Helper()
	if !peerCheck {
		t.Skip(ErrUnsupported)
	}
	d := t.TempDir()
	if err := os.Chmod(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

func tokenHandler(calls *atomic.Int32) Handler {
	return func(ctx context.Context, account string, wait time.Duration) *Response {
		if calls != nil {
			calls.Add(1)
		}
		if account != "work" {
			return &Response{Error: &Error{Message: "account " + account + " has no token yet", Hint: "mailkey login " + account, Code: 1}}
		}
		return &Response{AccessToken: testToken, TokenType: "Bearer", Expiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	}
}

// start runs an agent for a new state folder and stops it when the test ends.
func start(t *testing.T, h Handler, setup ...func(*Server)) (dir string, s *Server, logs *lockedBuffer) {
	t.Helper()
	return startIn(t, privateDir(t), h, setup...)
}

// startIn is start for the state folder dir.
func startIn(t *testing.T, dir string, h Handler, setup ...func(*Server)) (string, *Server, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	s, err := Listen(dir, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range setup {
		f(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(h) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if strings.Contains(logs.String(), testToken) {
			t.Error("the agent logged a token")
		}
	})
	return dir, s, logs
}

func ask(t *testing.T, dir, account string) (*Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return Ask(ctx, dir, Request{Account: account, WaitMS: 1000})
}

func TestAskAnswers(t *testing.T) {
	dir, s, _ := start(t, tokenHandler(nil))
	if Absent(dir) {
		t.Error("Absent with a running agent = true")
	}
	if want := filepath.Join(canonical(dir), "agent.sock"); s.Path() != want {
		t.Errorf("socket at %s, want %s", s.Path(), want)
	}
	fi, err := os.Lstat(s.Path())
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v, %v: want a socket with mode 0600", fi.Mode(), err)
	}
	resp, err := ask(t, dir, "work")
	if err != nil || resp.Error != nil || resp.AccessToken != testToken || resp.TokenType != "Bearer" || resp.Expiry.Year() != 2030 {
		t.Fatalf("Ask = %v, %v", resp, err)
	}
	if strings.Contains(resp.String(), testToken) {
		t.Error("Response.String shows the token")
	}
	// A worded failure comes back as it is, for the CLI to print.
	resp, err = ask(t, dir, "other")
	if err != nil || resp.Error == nil || resp.Error.Hint != "mailkey login other" || resp.Error.Code != 1 {
		t.Fatalf("Ask(other) = %v, %v", resp, err)
	}
}

// TestManyCallers: 200 callers at once all get their answer.
func TestManyCallers(t *testing.T) {
	var calls atomic.Int32
	dir, _, _ := start(t, tokenHandler(&calls))
	const n = 200
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, err := Ask(context.Background(), dir, Request{Account: "work"})
			if err == nil && resp.AccessToken != testToken {
				err = errors.New("wrong answer")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load() != n {
		t.Errorf("handler ran %d times for %d callers", calls.Load(), n)
	}
}

func TestNoAgent(t *testing.T) {
	dir := privateDir(t)
	if !Absent(dir) {
		t.Error("Absent without an agent = false")
	}
	if _, err := ask(t, dir, "work"); !errors.Is(err, ErrNoAgent) {
		t.Fatalf("Ask without an agent: %v, want ErrNoAgent", err)
	}
}

// TestStaleSocket: a socket left by an agent that died sends callers to the
// store, and the next agent replaces it.
func TestStaleSocket(t *testing.T) {
	dir := privateDir(t)
	path := filepath.Join(canonical(dir), "agent.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	if Absent(dir) {
		t.Error("Absent with a socket left behind = true: Ask must find out")
	}
	if _, err := ask(t, dir, "work"); !errors.Is(err, ErrNoAgent) {
		t.Fatalf("Ask on a stale socket: %v, want ErrNoAgent", err)
	}
	s, err := Listen(dir, nil)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	go s.Serve(tokenHandler(nil))
	defer s.Close()
	if resp, err := ask(t, dir, "work"); err != nil || resp.AccessToken != testToken {
		t.Fatalf("Ask after the stale socket was replaced: %v, %v", resp, err)
	}
}

// TestLiveAgentKept: a second agent for the folder refuses to start, and
// the first goes on answering.
func TestLiveAgentKept(t *testing.T) {
	dir, _, _ := start(t, tokenHandler(nil))
	_, err := Listen(dir, nil)
	var re *RunningError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "already answers") {
		t.Fatalf("second Listen: %v, want a *RunningError", err)
	}
	if resp, err := ask(t, dir, "work"); err != nil || resp.AccessToken != testToken {
		t.Fatalf("first agent after the second was refused: %v, %v", resp, err)
	}
}

func TestNotASocket(t *testing.T) {
	dir := privateDir(t)
	path := filepath.Join(dir, "agent.sock")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Listen(dir, nil)
	var pe *PathError
	if !errors.As(err, &pe) {
		t.Fatalf("Listen over a regular file: %v, want a *PathError", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Error("Listen changed a file that is not a socket")
	}
}

// TestCloseRemovesSocket: after Close the socket is gone and another agent
// may start.
func TestCloseRemovesSocket(t *testing.T) {
	dir := privateDir(t)
	s, err := Listen(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(tokenHandler(nil))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(s.Path()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket after Close: %v", err)
	}
	s2, err := Listen(dir, nil)
	if err != nil {
		t.Fatalf("Listen after Close: %v", err)
	}
	s2.Close()
}

// TestOtherUserRefused: a peer of another user gets nothing, the handler
// never runs, and the refusal is logged without a secret.
func TestOtherUserRefused(t *testing.T) {
	var calls atomic.Int32
	dir, s, logs := start(t, tokenHandler(&calls), func(s *Server) {
		s.peer = func(*net.UnixConn) (peer, error) { return peer{uid: os.Getuid() + 1, pid: 4242}, nil }
	})
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	c.Write([]byte(`{"v":1,"account":"work"}` + "\n"))
	var buf bytes.Buffer
	buf.ReadFrom(c)
	if buf.Len() != 0 {
		t.Fatalf("another user got %d bytes", buf.Len())
	}
	if _, err := ask(t, dir, "work"); !errors.Is(err, ErrNoAgent) {
		t.Fatalf("Ask from another user: %v, want ErrNoAgent", err)
	}
	if calls.Load() != 0 {
		t.Error("the handler ran for another user")
	}
	if l := logs.String(); !strings.Contains(l, "refused a connection from another user") || !strings.Contains(l, "peer_pid=4242") {
		t.Errorf("log: %s", l)
	}
}

// TestPeerIsSelf: the kernel names this process's user at both ends.
func TestPeerIsSelf(t *testing.T) {
	got := make(chan peer, 1)
	dir, _, _ := start(t, func(ctx context.Context, account string, wait time.Duration) *Response {
		return &Response{AccessToken: testToken}
	})
	s2 := filepath.Join(privateDir(t), "p.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: s2, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		p, _ := peerOf(c)
		got <- p
	}()
	c, err := net.Dial("unix", s2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case p := <-got:
		if p.uid != os.Getuid() {
			t.Errorf("peer uid %d, want %d", p.uid, os.Getuid())
		}
	case <-time.After(testTimeout):
		t.Fatal("no connection")
	}
	if _, err := ask(t, dir, "work"); err != nil {
		t.Fatal(err)
	}
}

// raw sends text on a new connection and returns the agent's answer line.
func raw(t *testing.T, path, text string) Response {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	c.Write([]byte(text))
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		t.Fatalf("no answer to %.20q: %v", text, err)
	}
	var r Response
	if err := json.Unmarshal(line, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestBadRequests(t *testing.T) {
	var calls atomic.Int32
	_, s, _ := start(t, tokenHandler(&calls))
	for _, tc := range []struct{ name, text, kind string }{
		{"not JSON", "hello\n", KindBadRequest},
		{"account not a string", `{"v":1,"account":7}` + "\n", KindBadRequest},
		{"too long", strings.Repeat("a", maxRequest+10) + "\n", KindBadRequest},
		{"no newline", `{"v":1,"account":"work"}`, ""},
		{"other version", `{"v":2,"account":"work"}` + "\n", KindUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.kind == "" {
				// Half-closed: the request never ends.
				c, err := net.Dial("unix", s.Path())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.Write([]byte(tc.text))
				c.(*net.UnixConn).CloseWrite()
				c.SetDeadline(time.Now().Add(testTimeout))
				line, _ := bufio.NewReader(c).ReadBytes('\n')
				if !bytes.Contains(line, []byte(KindBadRequest)) {
					t.Fatalf("answer %q", line)
				}
				return
			}
			r := raw(t, s.Path(), tc.text)
			if r.V != Version || r.Error == nil || r.Error.Kind != tc.kind {
				t.Fatalf("answer %+v, want kind %s", r.Error, tc.kind)
			}
		})
	}
	if calls.Load() != 0 {
		t.Error("the handler ran for a bad request")
	}
}

// TestFallbackKinds: answers that say "read the store" reach the client as
// ErrNoAgent.
func TestFallbackKinds(t *testing.T) {
	for _, kind := range []string{KindUnknownAccount, KindStopping} {
		dir, _, _ := start(t, func(context.Context, string, time.Duration) *Response {
			return &Response{Error: &Error{Kind: kind, Message: "no"}}
		})
		if _, err := ask(t, dir, "work"); !errors.Is(err, ErrNoAgent) {
			t.Errorf("kind %s: %v, want ErrNoAgent", kind, err)
		}
	}
}

// TestCloseEndsWaits: a request waiting when the agent stops is told to
// read the store, and Close returns once it is answered.
func TestCloseEndsWaits(t *testing.T) {
	dir := privateDir(t)
	waiting := make(chan struct{})
	s, err := Listen(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(func(ctx context.Context, account string, wait time.Duration) *Response {
		close(waiting)
		<-ctx.Done()
		return &Response{Error: &Error{Message: "interrupted"}}
	})
	errc := make(chan error, 1)
	go func() {
		_, err := Ask(context.Background(), dir, Request{Account: "work"})
		errc <- err
	}()
	<-waiting
	s.Close()
	if err := <-errc; !errors.Is(err, ErrNoAgent) || !strings.Contains(err.Error(), "stopping") {
		t.Fatalf("Ask while the agent stops: %v", err)
	}
}

// TestHangupEndsWait: a caller that hangs up ends its handler's wait.
func TestHangupEndsWait(t *testing.T) {
	ended := make(chan error, 1)
	waiting := make(chan struct{})
	_, s, _ := start(t, func(ctx context.Context, account string, wait time.Duration) *Response {
		close(waiting)
		<-ctx.Done()
		ended <- context.Cause(ctx)
		return &Response{Error: &Error{Message: "gone"}}
	})
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(`{"v":1,"account":"work"}` + "\n"))
	<-waiting
	c.Close()
	select {
	case cause := <-ended:
		if cause == nil || errors.Is(cause, context.DeadlineExceeded) || errors.Is(cause, ErrStopping) {
			t.Errorf("cause %v, want a hang-up", cause)
		}
	case <-time.After(testTimeout):
		t.Fatal("the handler went on waiting")
	}
}

func TestWaitBounds(t *testing.T) {
	for _, tc := range []struct {
		ms   int64
		want time.Duration
	}{{0, MaxWait}, {-5, MaxWait}, {1500, 1500 * time.Millisecond}, {int64(time.Hour / time.Millisecond), MaxWait}} {
		if got := (&Request{WaitMS: tc.ms}).Wait(); got != tc.want {
			t.Errorf("Wait(%d ms) = %s, want %s", tc.ms, got, tc.want)
		}
	}
}

// TestCanonicalMissing: a state folder that does not exist yet maps to the
// path it will resolve to once created.
func TestCanonicalMissing(t *testing.T) {
	base := privateDir(t)
	link := filepath.Join(base, "link")
	if err := os.Symlink(privateDir(t), link); err != nil {
		t.Skip(err)
	}
	dir := filepath.Join(link, "state", "mailkey")
	before := canonical(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if after := canonical(dir); after != before || strings.Contains(after, "link") {
		t.Errorf("canonical before creation %s, after %s", before, after)
	}
}

func TestSocketPath(t *testing.T) {
	short := privateDir(t)
	if p, err := SocketPath(short); err != nil || p != filepath.Join(canonical(short), "agent.sock") {
		t.Errorf("SocketPath(%s) = %s, %v", short, p, err)
	}
	long := filepath.Join(short, strings.Repeat("d", 120))
	run := privateDir(t)
	t.Setenv("XDG_RUNTIME_DIR", run)
	p, err := SocketPath(long)
	if err != nil || !strings.HasPrefix(p, filepath.Join(run, "mailkey")+string(filepath.Separator)) || len(p) > maxSocketPath {
		t.Errorf("SocketPath(long) = %s, %v; want a path under XDG_RUNTIME_DIR", p, err)
	}
	if q, _ := SocketPath(long); q != p {
		t.Error("SocketPath is not stable")
	}
	if q, _ := SocketPath(long + "x"); q == p {
		t.Error("two state folders share one socket")
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	_, err = SocketPath(long)
	var pe *PathError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "MAILKEY_STATE_DIR") {
		t.Errorf("SocketPath(long) without XDG_RUNTIME_DIR: %v", err)
	}
}

// TestLongStateDir: an agent for a deep state folder listens under
// XDG_RUNTIME_DIR, and a client finds it there.
func TestLongStateDir(t *testing.T) {
	run := privateDir(t)
	t.Setenv("XDG_RUNTIME_DIR", run)
	dir := filepath.Join(privateDir(t), strings.Repeat("d", 120)) // created by Listen
	s, err := Listen(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(tokenHandler(nil))
	defer s.Close()
	if fi, err := os.Stat(filepath.Join(run, "mailkey")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("runtime folder: %v, %v; want 0700", fi, err)
	}
	if resp, err := ask(t, dir, "work"); err != nil || resp.AccessToken != testToken {
		t.Fatalf("Ask: %v, %v", resp, err)
	}
}
