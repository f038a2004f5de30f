package proxy_test

import (
	"net"
	"sync"
	"syscall"
	"testing"

	"github.com/mailkey/mailkey/internal/proxy/proxytest"
)

// nagleListener turns TCP_NODELAY off on accepted connections, so that the
// test sees the proxy turn it on.
type nagleListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*net.TCPConn
}

func (l *nagleListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	tc.SetNoDelay(false)
	l.mu.Lock()
	l.conns = append(l.conns, tc)
	l.mu.Unlock()
	return c, nil
}

func noDelay(t *testing.T, c *net.TCPConn) bool {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	raw.Control(func(fd uintptr) { v, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY) })
	if serr != nil {
		t.Fatal(serr)
	}
	return v != 0
}

func TestNoDelayBothSides(t *testing.T) {
	d := &proxytest.Dialer{NoDelayOff: true}
	srv := newServer(d)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &nagleListener{Listener: inner}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(t.Context()) })

	c := login(t, inner.Addr().String())
	c.Send("ping\r\n")
	c.Expect("ping")
	ln.mu.Lock()
	client := ln.conns[0]
	ln.mu.Unlock()
	if !noDelay(t, client) {
		t.Error("client socket has Nagle on")
	}
	if !noDelay(t, d.Conns()[0].(*net.TCPConn)) {
		t.Error("upstream socket has Nagle on")
	}
}
