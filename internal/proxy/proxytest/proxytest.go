// Package proxytest provides fakes for testing the proxy: an
// Authenticator with fixed app passwords, a Dialer backed by an in-process
// upstream on loopback, a throwaway TLS certificate, a line-oriented test
// client and a log capture. It is for tests only.
package proxytest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/proxy"
	"github.com/mailkey/mailkey/internal/testwait"
)

// Auth is a fake Authenticator: Users maps a login to its app password and
// the account it belongs to.
type Auth struct {
	Users map[string]User
	// Err, when set, is returned for every login (a broken store).
	Err error

	mu    sync.Mutex
	calls int
}

// User is one fake login.
type User struct {
	Password string
	Account  string
	Label    string
}

// Authenticate implements proxy.Authenticator.
func (a *Auth) Authenticate(_ context.Context, login, password string, _ net.Addr) (string, string, error) {
	a.mu.Lock()
	a.calls++
	a.mu.Unlock()
	if a.Err != nil {
		return "", "", a.Err
	}
	u, ok := a.Users[login]
	if !ok || u.Password != password {
		return "", "", proxy.ErrBadCredentials
	}
	return u.Account, u.Label, nil
}

// Calls counts Authenticate calls.
func (a *Auth) Calls() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

// Dialer is a fake Dialer: every Dial starts an upstream on loopback and
// runs Handler on its side of the connection.
type Dialer struct {
	// Handler runs the upstream side; nil echoes every byte back.
	Handler func(up net.Conn)
	// Err, when set, is returned instead of dialling.
	Err error
	// Capabilities are returned in the Upstream.
	Capabilities []string
	// Sent is written by the upstream before Handler runs, and is already
	// buffered in the Upstream's Reader when Dial returns.
	Sent []byte
	// NoDelayOff turns TCP_NODELAY off on the returned connection, so a test
	// can see that the proxy turns it back on.
	NoDelayOff bool

	mu    sync.Mutex
	reqs  []proxy.UpstreamRequest
	conns []net.Conn
}

// Dial implements proxy.Dialer.
func (d *Dialer) Dial(ctx context.Context, req proxy.UpstreamRequest) (*proxy.Upstream, error) {
	d.mu.Lock()
	d.reqs = append(d.reqs, req)
	d.mu.Unlock()
	if d.Err != nil {
		return nil, d.Err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	srv, ok := <-accepted
	if !ok {
		c.Close()
		return nil, errors.New("fake upstream: accept failed")
	}
	if d.NoDelayOff {
		c.(*net.TCPConn).SetNoDelay(false)
	}
	d.mu.Lock()
	d.conns = append(d.conns, c)
	d.mu.Unlock()
	go func() {
		defer srv.Close()
		if len(d.Sent) > 0 {
			if _, err := srv.Write(d.Sent); err != nil {
				return
			}
		}
		if d.Handler != nil {
			d.Handler(srv)
			return
		}
		io.Copy(srv, srv)
	}()
	r := bufio.NewReader(c)
	if len(d.Sent) > 0 {
		if _, err := r.Peek(len(d.Sent)); err != nil {
			c.Close()
			return nil, err
		}
	}
	return &proxy.Upstream{Conn: c, Reader: r, Capabilities: d.Capabilities}, nil
}

// Requests returns the requests Dial received.
func (d *Dialer) Requests() []proxy.UpstreamRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]proxy.UpstreamRequest(nil), d.reqs...)
}

// Calls counts Dial calls.
func (d *Dialer) Calls() int { return len(d.Requests()) }

// Conns returns the proxy-side upstream connections Dial made.
func (d *Dialer) Conns() []net.Conn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]net.Conn(nil), d.conns...)
}

// TLS returns a server configuration with a fresh self-signed certificate
// for localhost and 127.0.0.1, and a client configuration that trusts it.
func TLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
		MinVersion:   tls.VersionTLS12,
	}
	client = &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	return server, client
}

// Start serves srv on a fresh loopback listener and returns its address;
// the server is shut down when the test ends.
func Start(t testing.TB, srv *proxy.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; !errors.Is(err, proxy.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

// Client is a line-oriented test client. Its reads and writes give up only at the test's
// deadline (testwait.Deadline): that keeps a broken test from hanging, nothing is timed.
type Client struct {
	t    testing.TB
	Conn net.Conn
	R    *bufio.Reader
}

// Dial connects to addr.
func Dial(t testing.TB, addr string) *Client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Client{t: t, Conn: c, R: bufio.NewReader(c)}
}

// Send writes s as is; the caller writes the line endings.
func (c *Client) Send(s string) {
	c.t.Helper()
	c.Conn.SetWriteDeadline(testwait.Deadline(c.t))
	if _, err := io.WriteString(c.Conn, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// Line reads one line and returns it without CRLF.
func (c *Client) Line() string {
	c.t.Helper()
	c.Conn.SetReadDeadline(testwait.Deadline(c.t))
	l, err := c.R.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("line %q does not end with CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// Expect reads one line and fails the test unless it starts with prefix.
func (c *Client) Expect(prefix string) string {
	c.t.Helper()
	l := c.Line()
	if !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("got %q, want a line starting with %q", l, prefix)
	}
	return l
}

// ExpectClosed fails the test unless the server closes the connection
// without sending anything more.
func (c *Client) ExpectClosed() {
	c.t.Helper()
	c.Conn.SetReadDeadline(testwait.Deadline(c.t))
	b, err := c.R.ReadString('\n')
	if err == nil || b != "" {
		c.t.Fatalf("got %q, %v; want the connection closed", b, err)
	}
	if errors.Is(err, net.ErrClosed) || isTimeout(err) {
		c.t.Fatalf("connection not closed by the server: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// StartTLS runs the client side of a TLS handshake on the connection.
func (c *Client) StartTLS(cfg *tls.Config) {
	c.t.Helper()
	if n := c.R.Buffered(); n > 0 {
		c.t.Fatalf("%d bytes buffered before TLS", n)
	}
	tc := tls.Client(c.Conn, cfg)
	c.Conn.SetDeadline(testwait.Deadline(c.t))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("tls handshake: %v", err)
	}
	c.Conn = tc
	c.R = bufio.NewReader(tc)
}

// LogBuffer collects log output; it is safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything logged so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Logger returns a debug-level JSON logger writing to b.
func (b *LogBuffer) Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
