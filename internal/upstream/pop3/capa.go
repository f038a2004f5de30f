package pop3

import "strings"

// Capa sends CAPA (RFC 2449 §5) and returns the capability lines, such as
// "STLS", "USER" or "SASL XOAUTH2 OAUTHBEARER". It also remembers them for
// SASLMechanisms. A server without CAPA answers -ERR, returned as *Error.
func (c *Client) Capa() ([]string, error) {
	if _, err := c.cmd("CAPA", "CAPA"); err != nil {
		return nil, err
	}
	lines, err := readList(c.br)
	if err != nil {
		return nil, c.fail(err)
	}
	c.capa = lines
	return append([]string(nil), lines...), nil
}

// SASLMechanisms returns the mechanisms of the SASL capability from the
// last Capa, or nil when Capa has not run, or ran before StartTLS.
func (c *Client) SASLMechanisms() []string {
	for _, line := range c.capa {
		fields := strings.Fields(line)
		if len(fields) > 0 && strings.EqualFold(fields[0], "SASL") {
			return fields[1:]
		}
	}
	return nil
}
