package check

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"time"

	gosasl "github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailkey/mailkey/internal/provider"
)

// smtpLocalName is the name mailkey gives in EHLO.
const smtpLocalName = "localhost"

type smtpSession struct {
	c *smtp.Client
}

// openSMTP reads the greeting, says EHLO and starts TLS: its own
// handshake for implicit TLS (submissions, RFC 8314), go-smtp's STARTTLS
// otherwise (RFC 3207), which discards what was buffered before the
// handshake.
func openSMTP(ctx context.Context, raw net.Conn, srv provider.Server, cfg *tls.Config, tr *transcript) (session, error) {
	timeout := time.Minute
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	var c *smtp.Client
	if srv.ImplicitTLS {
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, err
		}
		c = smtp.NewClient(tapConn(tc, tr))
	} else {
		var err error
		c, err = smtp.NewClientStartTLS(tapConn(raw, tr), cfg)
		if err != nil {
			if strings.Contains(err.Error(), "doesn't support STARTTLS") {
				err = errNoSTARTTLS
			}
			return nil, err
		}
		if tr != nil {
			// From here on the tap sees TLS records; the client's own
			// debug stream sees the plain text.
			c.DebugWriter = mixedWriter{tr}
		}
	}
	c.CommandTimeout = timeout
	// EHLO (after STARTTLS: the TLS handshake happens here).
	if err := c.Hello(smtpLocalName); err != nil {
		c.Close()
		return nil, err
	}
	return &smtpSession{c: c}, nil
}

func (s *smtpSession) mechanisms() ([]string, string, error) {
	ok, params := s.c.Extension("AUTH")
	if !ok {
		return nil, "offers no AUTH", nil
	}
	mechs := strings.Fields(params)
	detail := "offers " + orNothing(mechs)
	if size, ok := s.c.MaxMessageSize(); ok && size > 0 {
		detail += "; size limit " + itoa(size/1024/1024) + " MB"
	}
	return mechs, detail, nil
}

func (s *smtpSession) authenticate(c gosasl.Client) error {
	return s.c.Auth(c)
}

// command starts a transaction as the account's address and resets it:
// a server that accepted a token for another user refuses MAIL FROM.
func (s *smtpSession) command(email string) (string, error) {
	if err := s.c.Mail(email, nil); err != nil {
		return "", err
	}
	if err := s.c.Reset(); err != nil {
		return "", err
	}
	return "MAIL FROM:<" + email + "> accepted (then RSET)", nil
}

func (s *smtpSession) send(from, to string, msg []byte) (string, error) {
	if err := s.c.Mail(from, nil); err != nil {
		return "", err
	}
	if err := s.c.Rcpt(to, nil); err != nil {
		return "", err
	}
	w, err := s.c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write(msg); err != nil {
		w.Close()
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return "sent a test message to " + to + ": " + resp.StatusText, nil
}

func (s *smtpSession) close() {
	if s.c.Quit() != nil {
		s.c.Close()
	}
}
