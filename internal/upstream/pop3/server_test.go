package pop3

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"

	"github.com/mailkey/mailkey/internal/proxy/proxytest"
)

// fakeServer plays one scripted POP3 session on the server end of a
// net.Pipe. A script reads with expect and writes with send; a mismatch
// fails the test.
type fakeServer struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func (s *fakeServer) send(data string) {
	s.t.Helper()
	if _, err := s.conn.Write([]byte(data)); err != nil {
		s.t.Errorf("server write: %v", err)
	}
}

func (s *fakeServer) expect(want string) {
	s.t.Helper()
	line, err := s.br.ReadString('\n')
	if err != nil {
		s.t.Errorf("server read (want %q): %v", want, err)
		return
	}
	if line != want+"\r\n" {
		s.t.Errorf("server got %q, want %q", line, want+"\r\n")
	}
}

// startTLS turns the server side into TLS with cert.
func (s *fakeServer) startTLS(cert tls.Certificate) {
	s.t.Helper()
	tc := tls.Server(s.conn, &tls.Config{Certificates: []tls.Certificate{cert}})
	if err := tc.Handshake(); err != nil {
		s.t.Errorf("server handshake: %v", err)
		return
	}
	s.conn, s.br = tc, bufio.NewReader(tc)
}

// loopbackPair returns the two ends of a TCP connection on 127.0.0.1.
// Unlike net.Pipe it buffers, so a TLS peer can send its alert while the
// other side is still writing.
func loopbackPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			t.Errorf("accept: %v", err)
		}
		accepted <- conn
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.FailNow()
	}
	return client, server
}

// pipeClient runs script on the server end of a loopback connection and
// returns a client on the other end; the test waits for the script at
// cleanup.
func pipeClient(t *testing.T, script func(s *fakeServer)) (*Client, error) {
	t.Helper()
	cconn, sconn := loopbackPair(t)
	return clientOn(t, cconn, sconn, script)
}

// clientOn is pipeClient on a given connection pair.
func clientOn(t *testing.T, cconn, sconn net.Conn, script func(s *fakeServer)) (*Client, error) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer sconn.Close()
		script(&fakeServer{t: t, conn: sconn, br: bufio.NewReader(sconn)})
	}()
	t.Cleanup(func() {
		cconn.Close()
		<-done
	})
	return NewClient(cconn)
}

// mustPipeClient is pipeClient for scripts that start with a good greeting.
func mustPipeClient(t *testing.T, script func(s *fakeServer)) *Client {
	t.Helper()
	c, err := pipeClient(t, func(s *fakeServer) {
		s.send("+OK Dovecot (Debian) ready.\r\n")
		script(s)
	})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// testCert returns a self-signed certificate for localhost and 127.0.0.1,
// and a pool that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	server, client := proxytest.TLS(t)
	return server.Certificates[0], client.RootCAs
}
