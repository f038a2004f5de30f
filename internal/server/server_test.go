package server

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/apppass"
	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/internal/testwait"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type records struct{}

func (records) Get(context.Context, string) (*store.Record, error) {
	return &store.Record{AccessToken: tok1, Expiry: time.Now().Add(time.Hour)}, nil
}

// The whole server: an app password opens the account through the IMAP
// listener, a wrong one is refused without dialling, and neither the
// password nor the token reaches the logs, the status page or /metrics.
func TestServe(t *testing.T) {
	u := newUpstream(t, false, imapScript(func(_ int, tok string) string {
		return "m2 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n"
	}))
	state := filepath.Join(t.TempDir(), "state")
	pwFile := apppass.Open(state)
	pwFile.SetParams(apppass.Params{Time: 1, Memory: 64, Threads: 1, KeyLen: 32})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pw, _, err := pwFile.Add(ctx, "work", "test")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuf
	acct := &config.Account{Name: "work", Email: "me@example.test", CAFile: u.ca,
		Servers: map[provider.Protocol]provider.Server{provider.IMAP: {Host: "localhost", Port: u.port, Protocol: provider.IMAP}}}
	srv, err := New(Config{
		Proxy:     config.Proxy{IMAP: "127.0.0.1:0", Status: "127.0.0.1:0"},
		Accounts:  []*config.Account{acct},
		Tokens:    &fakeTokens{cur: tok1},
		Store:     records{},
		Passwords: pwFile,
		StateDir:  state,
		Logger:    slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	login := func(user, pass string) (string, *bufio.Reader, net.Conn) {
		c, err := net.Dial("tcp", srv.Addr(ListenIMAP))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(testwait.Deadline(t)) // keeps a broken test from hanging
		r := bufio.NewReader(c)
		r.ReadString('\n')
		c.Write([]byte("a LOGIN " + user + " " + pass + "\r\n"))
		l, _ := r.ReadString('\n')
		return l, r, c
	}
	l, _, c := login("work", "wrong-password")
	c.Close()
	if !strings.HasPrefix(l, "a NO [AUTHENTICATIONFAILED]") || u.count() != 0 {
		t.Fatalf("wrong password: %q, %d upstream connections", l, u.count())
	}
	l, r, c := login("me@example.test", pw)
	if !strings.HasPrefix(l, "a OK [CAPABILITY IMAP4rev1 IDLE]") {
		t.Fatalf("login: %q", l)
	}
	c.Write([]byte("x NOOP\r\n"))
	if l, _ := r.ReadString('\n'); l != "x OK noop\r\n" {
		t.Errorf("relay: %q", l)
	}
	c.Close()

	get := func(path string) string {
		resp, err := http.Get("http://" + srv.Addr(ListenStatus) + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	page, metrics := get("/"), get("/metrics")
	if get("/healthz") != "ok\n" {
		t.Error("healthz")
	}
	if r := get("/readyz"); r != "ok\n" {
		t.Errorf("readyz with a valid token: %q", r)
	}
	if !strings.Contains(page, "work") || !strings.Contains(page, srv.Fingerprint()) || !strings.Contains(page, "valid until") {
		t.Errorf("status page:\n%s", page)
	}
	for _, want := range []string{`mailkey_upstream_dials_total{protocol="imap"} 1`, `mailkey_proxy_logins_failed_total{protocol="imap"} 1`,
		`mailkey_proxy_logins_ok_total{protocol="imap"} 1`, "process_resident_memory_bytes",
		`mailkey_account_needs_person{account="work"} 0`, `mailkey_token_expiry_seconds{account="work"} `} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, `"account":"work"`) || !strings.Contains(out, srv.Fingerprint()) {
		t.Errorf("logs lack the session's account or the fingerprint:\n%s", out)
	}
	for what, text := range map[string]string{"logs": out, "status page": page, "metrics": metrics} {
		for _, secret := range []string{pw, tok1, strings.ReplaceAll(pw, "-", "")} {
			if strings.Contains(text, secret) {
				t.Errorf("a secret appears in the %s", what)
			}
		}
	}
	// Last use was written at shutdown.
	if l, _ := pwFile.List("work"); len(l) != 1 || l[0].LastUsed.IsZero() {
		t.Errorf("last use not recorded: %+v", l)
	}
}

func TestLoginAccounts(t *testing.T) {
	accounts := []*config.Account{
		{Name: "alice", Email: "alice@example.test"},
		{Name: "shared", Email: "alice@example.test", Mailbox: "shared@example.test"},
	}
	find := LoginAccounts(accounts)
	for _, tc := range []struct {
		login string
		want  []string
	}{
		{"alice", []string{"alice"}},
		{"Alice@Example.test", []string{"alice"}}, // the delegate's own mailbox, not the shared one
		{"shared", []string{"shared"}},
		{"SHARED@example.test", []string{"shared"}},
		{"bob@example.test", nil},
	} {
		if got := find(tc.login); !slices.Equal(got, tc.want) {
			t.Errorf("LoginAccounts(%q) = %q, want %q", tc.login, got, tc.want)
		}
	}
}

// TestServeReadyStopping: Ready comes once the listeners answer (a client
// connecting at that moment gets its greeting), Stopping when the shutdown
// begins and not before.
func TestServeReadyStopping(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	ready, stopping := make(chan struct{}), make(chan struct{})
	var readyAddr string
	var srv *Server
	srv, err := New(Config{
		Proxy:     config.Proxy{IMAP: "127.0.0.1:0"},
		Tokens:    &fakeTokens{cur: tok1},
		Passwords: apppass.Open(state),
		StateDir:  state,
		Ready:     func() { readyAddr = srv.Addr(ListenIMAP); close(ready) },
		Stopping:  func() { close(stopping) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run ended before Ready: %v", err)
	}
	c, err := net.Dial("tcp", readyAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(testwait.Deadline(t))
	if l, err := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(l, "* OK") {
		t.Fatalf("greeting right after Ready: %q %v", l, err)
	}
	c.Close()
	select {
	case <-stopping:
		t.Fatal("Stopping before the context ended")
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopping:
	default:
		t.Fatal("Run returned without calling Stopping")
	}
}
