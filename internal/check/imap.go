package check

import (
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailkey/mailkey/internal/upstream"
)

// maxListedMailboxes is how many mailbox names the IMAP check shows.
const maxListedMailboxes = 5

type imapSession struct {
	c *imapclient.Client
}

// newIMAPSession goes on with a login in go-imap. The client reads a
// PREAUTH greeting, which is what the connection is to it: authenticated
// already, with the capabilities the server announced after login.
func newIMAPSession(s *upstream.Session) session {
	greeting := "* PREAUTH "
	if len(s.Capabilities) > 0 {
		greeting += "[CAPABILITY " + strings.Join(s.Capabilities, " ") + "] "
	}
	greeting += "logged in by mailkey\r\n"
	conn := &preauthConn{Conn: s.Conn, r: io.MultiReader(strings.NewReader(greeting), s.Reader)}
	return &imapSession{c: imapclient.New(conn, nil)}
}

// preauthConn reads the made-up greeting, then the session.
type preauthConn struct {
	net.Conn
	r io.Reader
}

func (c *preauthConn) Read(b []byte) (int, error) { return c.r.Read(b) }

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
