package pop3

import (
	"crypto/tls"
	"fmt"
	"net"
)

// StartTLSWrap is StartTLS, with the protected connection passed through
// wrap once its handshake is done: a protocol transcript, for one, taps the
// plain text there. wrap must return a connection that reads and writes
// through the one it is given.
func (c *Client) StartTLSWrap(cfg *tls.Config, wrap func(net.Conn) net.Conn) error {
	return c.startTLS(cfg, wrap)
}

// StartTLS sends STLS (RFC 2595 §4) and runs the TLS handshake; an empty
// ServerName in cfg is filled in from Dial's address. Capabilities learned
// before are forgotten, as RFC 2595 requires: call Capa again.
//
// If the server sent anything after its +OK, StartTLS closes the
// connection and returns ErrSTLSInjection: those bytes were sent in the
// clear and must not be taken for part of the TLS session.
func (c *Client) StartTLS(cfg *tls.Config) error {
	return c.startTLS(cfg, nil)
}

func (c *Client) startTLS(cfg *tls.Config, wrap func(net.Conn) net.Conn) error {
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
	tc := tls.Client(c.conn, withServerName(cfg, c.host))
	if err := tc.Handshake(); err != nil {
		c.err = fmt.Errorf("pop3: TLS handshake: %w", err)
		c.Close()
		return c.err
	}
	var conn net.Conn = tc
	if wrap != nil {
		conn = wrap(tc)
	}
	c.conn = conn
	c.br.Reset(conn)
	c.bw.Reset(conn)
	c.isTLS = true
	c.capa = nil
	return nil
}
