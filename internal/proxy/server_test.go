package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/proxy"
	"github.com/mailkey/mailkey/internal/proxy/imapproxy"
	"github.com/mailkey/mailkey/internal/proxy/proxytest"
	"github.com/mailkey/mailkey/internal/testwait"
)

const pass = "app-password"

func newServer(d *proxytest.Dialer) *proxy.Server {
	return &proxy.Server{
		Protocol: imapproxy.Protocol{},
		Auth:     &proxytest.Auth{Users: map[string]proxytest.User{"alice": {Password: pass, Account: "work"}}},
		Dialer:   d,
		Limits:   proxy.Limits{FailureDelay: -1},
	}
}

func login(t *testing.T, addr string) *proxytest.Client {
	t.Helper()
	c := proxytest.Dial(t, addr)
	c.Expect("* OK ")
	c.Send("a LOGIN alice " + pass + "\r\n")
	c.Expect("a OK ")
	return c
}

// waitFor polls cond until the test's deadline; nothing is timed.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testwait.WaitFor(t, "the proxy's state", cond)
}

func TestConnectionCapPerSource(t *testing.T) {
	srv := newServer(&proxytest.Dialer{})
	srv.Limits.MaxConnsPerIP = 2
	addr := proxytest.Start(t, srv)
	c1 := proxytest.Dial(t, addr)
	c1.Expect("* OK ")
	c2 := login(t, addr)
	c3 := proxytest.Dial(t, addr)
	c3.Expect("* BYE [UNAVAILABLE] ")
	c3.ExpectClosed()
	if n := srv.Stats().RejectedBusy.Load(); n != 1 {
		t.Errorf("rejected %d, want 1", n)
	}
	c1.Conn.Close()
	// Wait for c1's slot itself: Active drops a moment before the slot is given back.
	waitFor(t, func() bool { return srv.SourceConns("127.0.0.1") == 1 })
	c4 := proxytest.Dial(t, addr)
	c4.Expect("* OK ")
	c2.Send("still here\r\n")
	c2.Expect("still here")
}

// Servers that share a Guard share its limits: connections and failed
// logins from one source count across them.
func TestGuardShared(t *testing.T) {
	guard := proxy.NewGuard(proxy.Limits{MaxConnsPerIP: 2, MaxLoginFailures: 2, FailureWindow: time.Hour})
	srvA, srvB := newServer(&proxytest.Dialer{}), newServer(&proxytest.Dialer{})
	srvA.Guard, srvB.Guard = guard, guard
	addrA, addrB := proxytest.Start(t, srvA), proxytest.Start(t, srvB)

	a := proxytest.Dial(t, addrA)
	a.Expect("* OK ")
	a.Send("a LOGIN alice wrong1\r\n")
	a.Expect("a NO [AUTHENTICATIONFAILED] ")
	b := proxytest.Dial(t, addrB)
	b.Expect("* OK ")
	b.Send("b LOGIN alice wrong2\r\n")
	b.Expect("b NO [AUTHENTICATIONFAILED] ")

	// Two connections are open, one on each server: a third on either is refused.
	c := proxytest.Dial(t, addrA)
	c.Expect("* BYE [UNAVAILABLE] ")
	c.ExpectClosed()

	// Two failures, one on each server: the right password is no longer checked.
	a.Send("c LOGIN alice " + pass + "\r\n")
	a.Expect("c NO [UNAVAILABLE] ")
	if n := srvA.Stats().RateLimited.Load(); n != 1 {
		t.Errorf("rate limited %d, want 1", n)
	}
}

// A client that keeps sending a wrong password for its login name is
// refused without its password being checked, but another client from
// the same address (every local client is 127.0.0.1) still logs in; only
// failures under many names lock the address out.
func TestFailuresPerLoginName(t *testing.T) {
	guard := proxy.NewGuard(proxy.Limits{MaxLoginFailures: 3, MaxSourceFailures: 6, FailureWindow: time.Hour})
	srv := newServer(&proxytest.Dialer{})
	srv.Guard = guard
	addr := proxytest.Start(t, srv)

	scanner := proxytest.Dial(t, addr)
	scanner.Expect("* OK ")
	for i := range 20 {
		scanner.Send(fmt.Sprintf("s%d LOGIN Scanner wrong\r\n", i))
		if i < 3 {
			scanner.Expect(fmt.Sprintf("s%d NO [AUTHENTICATIONFAILED] ", i))
		} else {
			scanner.Expect(fmt.Sprintf("s%d NO [UNAVAILABLE] ", i))
		}
		if i == 3 { // the name is matched without regard to case
			scanner.Send("S LOGIN scanner wrong\r\n")
			scanner.Expect("S NO [UNAVAILABLE] ")
		}
	}
	login(t, addr).Send("z LOGOUT\r\n")

	// Three more names fail three times in all: the address has had six.
	other := proxytest.Dial(t, addr)
	other.Expect("* OK ")
	for i := range 3 {
		other.Send(fmt.Sprintf("o%d LOGIN name%d wrong\r\n", i, i))
		other.Expect(fmt.Sprintf("o%d NO [AUTHENTICATIONFAILED] ", i))
	}
	c := proxytest.Dial(t, addr)
	c.Expect("* OK ")
	c.Send("a LOGIN alice " + pass + "\r\n")
	c.Expect("a NO [UNAVAILABLE] ")
}

func TestShutdown(t *testing.T) {
	srv := newServer(&proxytest.Dialer{})
	addr := proxytest.Start(t, srv)

	t.Run("waits for sessions", func(t *testing.T) {
		c := proxytest.Dial(t, addr)
		c.Expect("* OK ")
		waitFor(t, func() bool { return srv.Stats().Active.Load() == 1 })
		done := make(chan error, 1)
		go func() { done <- srv.Shutdown(context.Background()) }()
		// Shutdown has closed the listener (its port is free: another process may listen
		// there by now, so the server is asked, not the port).
		waitFor(t, func() bool { return srv.Listeners() == 0 })
		select {
		case err := <-done:
			t.Fatalf("Shutdown returned %v with a session running", err)
		default:
		}
		c.Send("a LOGOUT\r\n")
		c.Expect("* BYE")
		if err := <-done; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	})
}

func TestShutdownClosesAfterDeadline(t *testing.T) {
	srv := newServer(&proxytest.Dialer{})
	addr := proxytest.Start(t, srv)
	c := login(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	c.ExpectClosed()
	if n := srv.Stats().Active.Load(); n != 0 {
		t.Errorf("%d sessions still active", n)
	}
}

func TestHalfClosePropagates(t *testing.T) {
	srv := newServer(&proxytest.Dialer{})
	addr := proxytest.Start(t, srv)
	c := login(t, addr)
	c.Send("last words\r\n")
	if err := c.Conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.Conn.SetReadDeadline(testwait.Deadline(t))
	rest, err := io.ReadAll(c.R)
	if err != nil {
		t.Fatalf("reading after half-close: %v", err)
	}
	if string(rest) != "last words\r\n" {
		t.Fatalf("got %q after half-close", rest)
	}
}

func TestMissingDependencies(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := (&proxy.Server{Protocol: imapproxy.Protocol{}}).Serve(ln); err == nil {
		t.Fatal("Serve without Authenticator and Dialer succeeded")
	}
}

// TestIdleSessionMemory holds many logged-in, idle sessions and measures
// the memory each costs, the fake upstream's side and the test's client
// included: 10,000 idle sessions must fit in 300 MiB.
func TestIdleSessionMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("opens many sockets; the race detector distorts memory")
	}
	const n = 500
	const budget = 300 << 20 / 10000
	d := &proxytest.Dialer{Handler: func(up net.Conn) {
		b := make([]byte, 1)
		up.Read(b)
	}}
	srv := newServer(d)
	srv.Limits.MaxConnsPerIP = n + 1
	addr := proxytest.Start(t, srv)

	var heapIn, stackIn uint64
	measure := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		heapIn, stackIn = m.HeapInuse, m.StackInuse
		return m.HeapInuse + m.StackInuse
	}
	before := measure()
	h0, s0 := heapIn, stackIn
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	buf := make([]byte, 256)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.SetDeadline(testwait.Deadline(t))
		c.Read(buf) // greeting
		io.WriteString(c, "a LOGIN alice "+pass+"\r\n")
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return srv.Stats().Spliced.Load() == n })
	per := (measure() - before) / n
	t.Logf("%d bytes per idle session (heap %d, stacks %d)", per, (heapIn-h0)/n, (stackIn-s0)/n)
	if per > budget {
		t.Errorf("an idle session costs %d bytes, want at most %d", per, budget)
	}
}
