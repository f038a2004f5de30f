package pop3

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
)

func TestGreeting(t *testing.T) {
	c := mustPipeClient(t, func(s *fakeServer) {})
	if got := c.Greeting(); got != "Dovecot (Debian) ready." {
		t.Errorf("Greeting() = %q", got)
	}
	if c.IsTLS() {
		t.Error("plain pipe reported as TLS")
	}
}

func TestGreetingRefused(t *testing.T) {
	_, err := pipeClient(t, func(s *fakeServer) {
		s.send("-ERR [SYS/TEMP] too many connections\r\n")
	})
	var e *Error
	if !errors.As(err, &e) || e.Code != "SYS/TEMP" || e.Command != "" || !e.Temporary() {
		t.Fatalf("err = %#v", err)
	}
}

func TestGreetingMalformed(t *testing.T) {
	for _, greeting := range []string{"* OK IMAP4rev1\r\n", "220 smtp ready\r\n", "+ \r\n"} {
		_, err := pipeClient(t, func(s *fakeServer) { s.send(greeting) })
		if !errors.Is(err, ErrMalformedResponse) {
			t.Errorf("greeting %q: err = %v, want ErrMalformedResponse", greeting, err)
		}
	}
	_, err := pipeClient(t, func(s *fakeServer) { s.send("+OK no line end") })
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated greeting: err = %v", err)
	}
}

func TestNoopQuit(t *testing.T) {
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("NOOP")
		s.send("+OK\r\n")
		s.expect("QUIT")
		s.send("+OK Logging out.\r\n")
	})
	if err := c.Noop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop(); !errors.Is(err, ErrClosed) {
		t.Errorf("after Quit: %v", err)
	}
}

func TestQuitError(t *testing.T) {
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("QUIT")
		s.send("-ERR some deleted messages not removed\r\n")
	})
	var e *Error
	if err := c.Quit(); !errors.As(err, &e) || e.Command != "QUIT" {
		t.Errorf("Quit() = %v", err)
	}
}

func TestCapa(t *testing.T) {
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("CAPA")
		s.send("+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nSTLS\r\nUSER\r\nSASL PLAIN LOGIN XOAUTH2 OAUTHBEARER\r\n.\r\n")
	})
	if got := c.SASLMechanisms(); got != nil {
		t.Errorf("SASLMechanisms before Capa = %q", got)
	}
	caps, err := c.Capa()
	if err != nil {
		t.Fatal(err)
	}
	if len(caps) != 9 || caps[6] != "STLS" {
		t.Errorf("Capa() = %q", caps)
	}
	want := []string{"PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"}
	got := c.SASLMechanisms()
	if len(got) != len(want) {
		t.Fatalf("SASLMechanisms() = %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("SASLMechanisms() = %q, want %q", got, want)
		}
	}
}

func TestCapaUnsupported(t *testing.T) {
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("CAPA")
		s.send("-ERR unknown command\r\n")
		s.expect("NOOP")
		s.send("+OK\r\n")
	})
	var e *Error
	if _, err := c.Capa(); !errors.As(err, &e) || e.Command != "CAPA" {
		t.Fatalf("Capa() = %v", err)
	}
	if err := c.Noop(); err != nil {
		t.Errorf("a -ERR must leave the connection usable: %v", err)
	}
}

func TestStartTLS(t *testing.T) {
	cert, pool := testCert(t)
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("STLS")
		s.send("+OK Begin TLS negotiation now.\r\n")
		s.startTLS(cert)
		s.expect("CAPA")
		s.send("+OK\r\nSASL XOAUTH2\r\n.\r\n")
	})
	c.capa = []string{"STLS", "SASL PLAIN"}
	if err := c.StartTLS(&tls.Config{RootCAs: pool, ServerName: "localhost"}); err != nil {
		t.Fatal(err)
	}
	if !c.IsTLS() {
		t.Error("IsTLS() = false after StartTLS")
	}
	if c.SASLMechanisms() != nil {
		t.Error("capabilities from before STLS must be forgotten")
	}
	if _, err := c.Capa(); err != nil {
		t.Fatal(err)
	}
	if m := c.SASLMechanisms(); len(m) != 1 || m[0] != "XOAUTH2" {
		t.Errorf("SASLMechanisms() = %q", m)
	}
	if err := c.StartTLS(&tls.Config{}); !errors.Is(err, ErrTLSActive) {
		t.Errorf("second StartTLS: %v", err)
	}
}

// StartTLSWith goes on with the connection upgrade returns: what follows
// goes through it.
func TestStartTLSWith(t *testing.T) {
	cert, pool := testCert(t)
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("STLS")
		s.send("+OK\r\n")
		s.startTLS(cert)
		s.expect("NOOP")
		s.send("+OK\r\n")
	})
	var seen bytes.Buffer
	err := c.StartTLSWith(func() (net.Conn, error) {
		tc := tls.Client(c.conn, &tls.Config{RootCAs: pool, ServerName: "localhost"})
		return &recordingConn{Conn: tc, w: &seen}, tc.Handshake()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Noop(); err != nil {
		t.Fatal(err)
	}
	if got := seen.String(); got != "NOOP\r\n+OK\r\n" {
		t.Errorf("the wrapper saw %q", got)
	}
}

// recordingConn copies what is written and read to w.
type recordingConn struct {
	net.Conn
	w *bytes.Buffer
}

func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.w.Write(b[:n])
	return n, err
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.w.Write(b)
	return c.Conn.Write(b)
}

func TestStartTLSBadCertificate(t *testing.T) {
	cert, _ := testCert(t)
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("STLS")
		s.send("+OK\r\n")
		tc := tls.Server(s.conn, &tls.Config{Certificates: []tls.Certificate{cert}})
		tc.Handshake() // fails: the client does not trust cert
	})
	err := c.StartTLS(&tls.Config{ServerName: "localhost", RootCAs: nil})
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		t.Fatalf("StartTLS() = %v, want a certificate error", err)
	}
	if err := c.Noop(); err == nil {
		t.Error("connection must be unusable after a failed handshake")
	}
}

// Regression: a man in the middle appends a plaintext response to the +OK
// of STLS, hoping the client reads it as the first answer over TLS.
func TestStartTLSInjection(t *testing.T) {
	_, pool := testCert(t)
	// net.Pipe hands the client one write in one read, deterministically.
	cconn, sconn := net.Pipe()
	c, err := clientOn(t, cconn, sconn, func(s *fakeServer) {
		s.send("+OK ready\r\n")
		s.expect("STLS")
		s.send("+OK\r\n+OK extra\r\n") // one write: the client reads both at once
	})
	if err != nil {
		t.Fatal(err)
	}
	err = c.StartTLS(&tls.Config{RootCAs: pool, ServerName: "localhost"})
	if !errors.Is(err, ErrSTLSInjection) {
		t.Fatalf("StartTLS() = %v, want ErrSTLSInjection", err)
	}
	if c.IsTLS() {
		t.Error("IsTLS() = true after refused STLS")
	}
	if err := c.Noop(); !errors.Is(err, ErrSTLSInjection) {
		t.Errorf("later command: %v", err)
	}
}

func TestStartTLSRefused(t *testing.T) {
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("STLS")
		s.send("-ERR TLS not configured\r\n")
	})
	var e *Error
	if err := c.StartTLS(&tls.Config{}); !errors.As(err, &e) || e.Command != "STLS" {
		t.Errorf("StartTLS() = %v", err)
	}
}

func TestUserPass(t *testing.T) {
	const password = "hunter2-SECRET"
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("USER alice@example.test")
		s.send("+OK\r\n")
		s.expect("PASS " + password)
		s.send("-ERR [AUTH] Authentication failed.\r\n")
	})
	if err := c.User("alice@example.test"); err != nil {
		t.Fatal(err)
	}
	err := c.Pass(password)
	var e *Error
	if !errors.As(err, &e) || e.Code != "AUTH" || e.Command != "PASS" {
		t.Fatalf("Pass() = %v", err)
	}
	if containsSecret(err, password) {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestArgumentInjection(t *testing.T) {
	c := mustPipeClient(t, func(s *fakeServer) {}) // nothing may reach the server
	for _, arg := range []string{"alice\r\nDELE 1", "a\nb", "a\x00b"} {
		if err := c.User(arg); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("User(%q) = %v", arg, err)
		}
		if err := c.Pass(arg); !errors.Is(err, ErrInvalidArgument) || containsSecret(err, arg) {
			t.Errorf("Pass(%q) = %v", arg, err)
		}
	}
	if _, err := c.Retr(0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Retr(0) = %v", err)
	}
}

func TestStatListUidl(t *testing.T) {
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("STAT")
		s.send("+OK 2 3210\r\n")
		s.expect("LIST")
		s.send("+OK 2 messages:\r\n1 1200\r\n2 2010\r\n.\r\n")
		s.expect("UIDL")
		s.send("+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n")
		s.expect("STAT")
		s.send("+OK lots\r\n")
		s.expect("LIST")
		s.send("+OK\r\n1\r\n.\r\n")
	})
	n, size, err := c.Stat()
	if err != nil || n != 2 || size != 3210 {
		t.Errorf("Stat() = %d, %d, %v", n, size, err)
	}
	list, err := c.List()
	if err != nil || len(list) != 2 || list[1] != (ListEntry{2, 2010}) {
		t.Errorf("List() = %v, %v", list, err)
	}
	uidl, err := c.Uidl()
	if err != nil || len(uidl) != 2 || uidl[0] != (UidlEntry{1, "whqtswO00WBw418f9t5JxYwZ"}) {
		t.Errorf("Uidl() = %v, %v", uidl, err)
	}
	if _, _, err := c.Stat(); !errors.Is(err, ErrMalformedResponse) {
		t.Errorf("bad STAT: %v", err)
	}
	if _, err := c.List(); !errors.Is(err, ErrMalformedResponse) {
		t.Errorf("bad LIST: %v", err)
	}
}

func TestRetrDotStuffing(t *testing.T) {
	long := make([]byte, 10000) // longer than the bufio buffer
	for i := range long {
		long[i] = 'x'
	}
	wire := "+OK 120 octets\r\n" +
		"Subject: dots\r\n" +
		"\r\n" +
		"..leading dot\r\n" +
		"..\r\n" +
		"...\r\n" +
		"." + string(long) + "\r\n" +
		"not.a.terminator.\r\n" +
		".\r\n"
	want := "Subject: dots\r\n" +
		"\r\n" +
		".leading dot\r\n" +
		".\r\n" +
		"..\r\n" +
		string(long) + "\r\n" +
		"not.a.terminator.\r\n"
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("RETR 1")
		s.send(wire)
		s.expect("RETR 9")
		s.send("-ERR no such message\r\n")
		s.expect("NOOP")
		s.send("+OK\r\n")
	})
	got, err := c.Retr(1)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("Retr(1) =\n%q\nwant\n%q", got, want)
	}
	var e *Error
	if _, err := c.Retr(9); !errors.As(err, &e) || e.Command != "RETR" {
		t.Errorf("Retr(9) = %v", err)
	}
	if err := c.Noop(); err != nil {
		t.Errorf("connection should stay usable: %v", err)
	}
}

func TestResponseTooLongIsSticky(t *testing.T) {
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("NOOP")
		line := make([]byte, maxResponseLine+10)
		for i := range line {
			line[i] = 'a'
		}
		s.send("+OK " + string(line) + "\r\n")
	})
	if err := c.Noop(); !errors.Is(err, ErrResponseTooLong) {
		t.Fatalf("Noop() = %v", err)
	}
	if err := c.Noop(); !errors.Is(err, ErrResponseTooLong) {
		t.Errorf("second Noop() = %v, want the sticky error", err)
	}
}

// Dial over loopback with implicit TLS, then a server that stops
// answering: cancelling the context must unblock the client.
func TestDialImplicitTLSAndCancel(t *testing.T) {
	cert, pool := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		conn, err := ln.Accept()
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer conn.Close()
		tc := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{cert}})
		tc.Write([]byte("+OK POP3S ready\r\n"))
		io.Copy(io.Discard, tc) // never answers; returns when the client closes
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The address is an IP: the certificate must match it, since
	// ServerName comes from the address.
	c, err := Dial(ctx, ln.Addr().String(), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	if !c.IsTLS() || c.Greeting() != "POP3S ready" {
		t.Errorf("IsTLS() = %v, Greeting() = %q", c.IsTLS(), c.Greeting())
	}
	errc := make(chan error, 1)
	go func() { errc <- c.Noop() }()
	cancel()
	if err := <-errc; err == nil {
		t.Error("Noop() succeeded against a silent server")
	}
	c.Close()
	<-served
}

func TestDialTLSWrongName(t *testing.T) {
	cert, pool := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{cert}}).Handshake()
	}()
	_, err = Dial(context.Background(), ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "other.example.test"})
	if err == nil {
		t.Fatal("Dial accepted a certificate for another name")
	}
}
