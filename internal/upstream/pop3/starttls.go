package pop3

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
)

// StartTLS sends STLS (RFC 2595 §4) and runs the TLS handshake; an empty
// ServerName in cfg is filled in from Dial's address. Capabilities learned
// before are forgotten, as RFC 2595 requires: call Capa again.
//
// If the server sent anything after its +OK, StartTLS closes the
// connection and returns ErrSTLSInjection: those bytes were sent in the
// clear and must not be taken for part of the TLS session.
func (c *Client) StartTLS(cfg *tls.Config) error {
	return c.StartTLSWith(func() (net.Conn, error) {
		tc := tls.Client(c.conn, withServerName(cfg, c.host))
		return tc, tc.Handshake()
	})
}

// StartTLSWith is StartTLS with the handshake left to upgrade, called
// after the server's +OK: it returns the connection to go on with, TLS
// over the one the client was given, and possibly wrapped (a protocol
// transcript, for one, taps the plain text there).
func (c *Client) StartTLSWith(upgrade func() (net.Conn, error)) error {
	if c.err != nil {
		return c.err
	}
	if c.isTLS {
		return ErrTLSActive
	}
	if _, err := c.cmd("STLS", "STLS"); err != nil {
		return err
	}
	if c.br.Buffered() > 0 {
		c.err = ErrSTLSInjection
		c.Close()
		return ErrSTLSInjection
	}
	conn, err := upgrade()
	if err != nil {
		c.err = fmt.Errorf("pop3: TLS handshake: %w", err)
		c.Close()
		return c.err
	}
	c.conn = conn
	c.br.Reset(conn)
	c.bw.Reset(conn)
	c.isTLS = true
	c.capa = nil
	return nil
}

// Stream returns the connection and the reader that holds what was read
// of it ahead, for a caller that takes the session over (mailkey serve
// relays it to a mail client). The Client must not be used afterwards.
func (c *Client) Stream() (net.Conn, *bufio.Reader) { return c.conn, c.br }
