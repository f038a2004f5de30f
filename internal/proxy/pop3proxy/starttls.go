package pop3proxy

import (
	"errors"

	"github.com/mailkey/mailkey/internal/proxy"
)

// stls runs STLS (RFC 2595 §4). The client must forget what it knew, so a
// pending USER is dropped.
func (c *conn) stls(arg string) (bool, error) {
	if arg != "" {
		return false, c.bad("-ERR STLS takes no arguments")
	}
	if !c.s.TLSAvailable() {
		return false, c.bad("-ERR STLS not available")
	}
	err := c.s.StartTLS("+OK Begin TLS negotiation")
	if errors.Is(err, proxy.ErrInjection) {
		c.s.Reply("-ERR Commands sent after STLS before TLS")
	}
	c.user = ""
	return false, err
}
