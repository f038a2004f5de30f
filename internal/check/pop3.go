package check

import (
	"fmt"

	"github.com/mailkey/mailkey/internal/upstream"
	"github.com/mailkey/mailkey/internal/upstream/pop3"
)

type pop3Session struct {
	c *pop3.Client
}

// newPOP3Session goes on with the wire client the login ran on.
func newPOP3Session(s *upstream.Session) session { return &pop3Session{c: s.POP3} }

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
