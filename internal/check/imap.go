package check

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	gosasl "github.com/emersion/go-sasl"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailkey/mailkey/internal/provider"
)

// maxListedMailboxes is how many mailbox names the IMAP check shows.
const maxListedMailboxes = 5

type imapSession struct {
	c *imapclient.Client
}

// openIMAP reads the greeting and starts TLS: its own handshake for
// implicit TLS, imapclient's STARTTLS otherwise (which drains what was
// buffered before the handshake and refuses PREAUTH, RFC 9051 §7.1.4).
func openIMAP(ctx context.Context, raw net.Conn, srv provider.Server, cfg *tls.Config, tr *transcript) (session, error) {
	opts := &imapclient.Options{TLSConfig: cfg}
	if srv.ImplicitTLS {
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"imap"}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, err
		}
		c := imapclient.New(tapConn(tc, tr), opts)
		if err := waitGreeting(c); err != nil {
			c.Close()
			return nil, err
		}
		return &imapSession{c: c}, nil
	}
	if tr != nil {
		opts.DebugWriter = mixedWriter{tr}
	}
	c, err := imapclient.NewStartTLS(raw, opts)
	if err != nil {
		return nil, err
	}
	return &imapSession{c: c}, nil
}

// waitGreeting is WaitGreeting without its race: after a BYE greeting,
// go-imap has closed both the channel that carries the greeting's error and
// the one that says the connection ended, and WaitGreeting picks either at
// random. Asked again, it answers from the same two closed channels, so a
// few more calls find the BYE (its *imap.Error) if there was one.
func waitGreeting(c *imapclient.Client) error {
	err := c.WaitGreeting()
	for i := 0; i < 16 && err != nil; i++ {
		var ie *imap.Error
		if errors.As(err, &ie) {
			return err
		}
		if again := c.WaitGreeting(); again != nil {
			err = again
		}
	}
	return err
}

func (s *imapSession) mechanisms() ([]string, string, error) {
	// Caps uses what the greeting or STARTTLS told, asking only if needed.
	caps := s.c.Caps()
	if caps == nil {
		return nil, "", errNoCapabilities
	}
	mechs := caps.AuthMechanisms()
	detail := "offers " + orNothing(mechs)
	if caps.Has(imap.CapSASLIR) {
		detail += " (SASL-IR)"
	}
	return mechs, detail, nil
}

func (s *imapSession) authenticate(c gosasl.Client) error {
	return s.c.Authenticate(c)
}

// command lists the top-level mailboxes: a server that accepted a token
// for another user (Exchange does) fails here.
func (s *imapSession) command(string) (string, error) {
	boxes, err := s.c.List("", "%", nil).Collect()
	if err != nil {
		return "", err
	}
	var names []string
	for _, b := range boxes {
		if len(names) == maxListedMailboxes {
			names = append(names, "…")
			break
		}
		names = append(names, b.Mailbox)
	}
	return fmt.Sprintf("LIST: %d mailboxes (%s)", len(boxes), strings.Join(names, ", ")), nil
}

func (s *imapSession) close() {
	s.c.Logout().Wait()
	s.c.Close()
}

func orNothing(list []string) string {
	if len(list) == 0 {
		return "no SASL mechanism"
	}
	return strings.Join(list, " ")
}
