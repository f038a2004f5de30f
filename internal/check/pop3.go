package check

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"

	gosasl "github.com/emersion/go-sasl"

	"github.com/mailkey/mailkey/internal/pop3"
	"github.com/mailkey/mailkey/internal/provider"
)

type pop3Session struct {
	c *pop3.Client
}

// openPOP3 reads the greeting and starts TLS: its own handshake for
// implicit TLS, the pop3 package's STLS otherwise.
func openPOP3(ctx context.Context, raw net.Conn, srv provider.Server, cfg *tls.Config, tr *transcript) (session, error) {
	if srv.ImplicitTLS {
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, err
		}
		c, err := pop3.NewClient(tapConn(tc, tr))
		if err != nil {
			return nil, err
		}
		return &pop3Session{c: c}, nil
	}
	// The tap on the raw connection falls silent at the handshake; a
	// second one on the TLS connection carries the transcript on.
	c, err := pop3.NewClient(tapConn(raw, tr))
	if err != nil {
		return nil, err
	}
	capa, err := c.Capa()
	if err == nil && !hasCapa(capa, "STLS") {
		err = errNoSTARTTLS
	}
	if err == nil {
		err = c.StartTLSWrap(cfg, func(tc net.Conn) net.Conn { return tapConn(tc, tr) })
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return &pop3Session{c: c}, nil
}

func hasCapa(capa []string, name string) bool {
	for _, l := range capa {
		if len(l) >= len(name) && (len(l) == len(name) || l[len(name)] == ' ') && strings.EqualFold(l[:len(name)], name) {
			return true
		}
	}
	return false
}

func (s *pop3Session) mechanisms() ([]string, string, error) {
	if _, err := s.c.Capa(); err != nil {
		return nil, "", err
	}
	mechs := s.c.SASLMechanisms()
	return mechs, "offers " + orNothing(mechs), nil
}

func (s *pop3Session) authenticate(c gosasl.Client) error {
	return s.c.Auth(c, pop3.AuthOptions{})
}

// command asks for the mailbox size (STAT, RFC 1939 §5).
func (s *pop3Session) command(string) (string, error) {
	n, size, err := s.c.Stat()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("STAT: %d messages, %d bytes", n, size), nil
}

func (s *pop3Session) close() {
	s.c.Quit()
}
