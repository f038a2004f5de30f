package smtpproxy

import (
	"errors"

	"github.com/mailkey/mailkey/internal/proxy"
)

// starttls runs STARTTLS (RFC 3207). Afterwards the client must greet
// again (§4.2), so the EHLO seen so far is forgotten.
func (c *conn) starttls(arg string) (bool, error) {
	if arg != "" {
		return false, c.bad("501 5.5.4 STARTTLS takes no arguments")
	}
	if !c.s.TLSAvailable() {
		return false, c.bad("502 5.5.1 STARTTLS not available")
	}
	err := c.s.StartTLS("220 2.0.0 Ready to start TLS")
	if errors.Is(err, proxy.ErrInjection) {
		c.s.Reply("421 4.7.0 " + c.s.Hostname() + " Commands sent after STARTTLS before TLS")
	}
	c.ehlo = ""
	return false, err
}
