package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"
)

// Client is a POP3 client connection.
type Client struct {
	conn     net.Conn // the current connection: plain, or TLS over it
	br       *bufio.Reader
	bw       *bufio.Writer
	host     string // server name for STLS certificate checks
	isTLS    bool
	greeting string
	capa     []string
	err      error // sticky: the stream is out of step, or closed
	closed   bool
	stopCtx  func() bool // undoes Dial's context.AfterFunc
}

// Dial connects to addr ("host:port"), reads the greeting and returns the
// client. With a non-nil tlsConfig the connection uses implicit TLS (POP3S,
// port 995); an empty ServerName in it is filled in from addr. With a nil
// tlsConfig the connection is plain; use StartTLS next.
//
// ctx governs the whole session, not only the dial: its deadline becomes
// the connection's deadline and cancelling it aborts any I/O in progress.
func Dial(ctx context.Context, addr string, tlsConfig *tls.Config) (*Client, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("pop3: %w", err)
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pop3: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() {
		// A deadline in the past wakes up every blocked Read and Write.
		raw.SetDeadline(time.Unix(1, 0))
	})
	conn := raw
	if tlsConfig != nil {
		tc := tls.Client(raw, withServerName(tlsConfig, host))
		if err := tc.HandshakeContext(ctx); err != nil {
			stop()
			raw.Close()
			return nil, fmt.Errorf("pop3: %w", err)
		}
		conn = tc
	}
	c, err := newClient(conn, host, tlsConfig != nil)
	if err != nil {
		stop()
		raw.Close()
		return nil, err
	}
	c.stopCtx = stop
	return c, nil
}

// NewClient reads the greeting from conn and returns the client. It sets no
// deadlines: that is the caller's business. For StartTLS to check the
// certificate, its tls.Config needs a ServerName.
func NewClient(conn net.Conn) (*Client, error) {
	_, isTLS := conn.(*tls.Conn)
	return newClient(conn, "", isTLS)
}

func newClient(conn net.Conn, host string, isTLS bool) (*Client, error) {
	c := &Client{
		conn:  conn,
		br:    bufio.NewReader(conn),
		bw:    bufio.NewWriter(conn),
		host:  host,
		isTLS: isTLS,
	}
	s, err := readStatus(c.br)
	if err != nil {
		return nil, fmt.Errorf("pop3: reading greeting: %w", err)
	}
	if s.cont {
		return nil, fmt.Errorf("%w: greeting is a continuation", ErrMalformedResponse)
	}
	if !s.ok {
		return nil, errorFor("", s)
	}
	c.greeting = s.text
	return c, nil
}

func withServerName(cfg *tls.Config, host string) *tls.Config {
	if cfg.ServerName != "" || host == "" {
		return cfg
	}
	cfg = cfg.Clone()
	cfg.ServerName = host
	return cfg
}

// Greeting returns the text of the server's greeting, without "+OK".
func (c *Client) Greeting() string { return c.greeting }

// IsTLS reports whether the connection runs TLS.
func (c *Client) IsTLS() bool { return c.isTLS }

// fail records err as sticky when it leaves the stream out of step, and
// returns it.
func (c *Client) fail(err error) error {
	if isProtocolDesync(err) && c.err == nil {
		c.err = err
	}
	return err
}

// writeLine sends one command line.
func (c *Client) writeLine(line string) error {
	if c.err != nil {
		return c.err
	}
	if _, err := c.bw.WriteString(line + "\r\n"); err != nil {
		return c.fail(err)
	}
	return c.fail(c.bw.Flush())
}

// cmd sends a command line and reads its status line. A -ERR answer is an
// *Error for verb; a continuation outside AUTH is malformed.
func (c *Client) cmd(verb, line string) (status, error) {
	if err := c.writeLine(line); err != nil {
		return status{}, err
	}
	s, err := readStatus(c.br)
	if err != nil {
		return status{}, c.fail(err)
	}
	if s.cont {
		return status{}, c.fail(fmt.Errorf("%w: unexpected continuation", ErrMalformedResponse))
	}
	if !s.ok {
		return status{}, errorFor(verb, s)
	}
	return s, nil
}

// checkArg rejects arguments that would end or split the command line.
func checkArg(arg string) error {
	if strings.ContainsAny(arg, "\r\n\x00") {
		return ErrInvalidArgument
	}
	return nil
}

// Noop sends NOOP.
func (c *Client) Noop() error {
	_, err := c.cmd("NOOP", "NOOP")
	return err
}

// Quit sends QUIT and closes the connection. In the transaction state the
// server then deletes the messages marked for deletion; a -ERR answer
// (RFC 1939 §6: some could not be removed) is returned as an *Error.
func (c *Client) Quit() error {
	_, err := c.cmd("QUIT", "QUIT")
	if cerr := c.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// Close closes the connection without QUIT.
func (c *Client) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	if c.err == nil {
		c.err = ErrClosed
	}
	if c.stopCtx != nil {
		c.stopCtx()
	}
	return c.conn.Close()
}
