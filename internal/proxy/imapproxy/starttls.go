package imapproxy

import (
	"errors"

	"github.com/mailkey/mailkey/internal/proxy"
)

// starttls runs STARTTLS (RFC 9051 §6.2.1, RFC 2595). The client must ask
// for CAPABILITY again afterwards, so none is sent.
func (c *conn) starttls(cmd *command) (bool, error) {
	t := cmd.tag
	if len(cmd.args) != 0 {
		return false, c.bad(t + " BAD STARTTLS takes no arguments")
	}
	if !c.s.TLSAvailable() {
		return false, c.bad(t + " BAD STARTTLS not available")
	}
	err := c.s.StartTLS(t + " OK Begin TLS negotiation now")
	if errors.Is(err, proxy.ErrInjection) {
		c.s.Reply("* BYE Commands sent after STARTTLS before TLS")
	}
	return false, err
}
