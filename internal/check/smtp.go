package check

import (
	"github.com/mailkey/mailkey/internal/upstream"
)

type smtpSession struct {
	s *upstream.Session
}

func newSMTPSession(s *upstream.Session) session { return &smtpSession{s: s} }

// command starts a transaction as the account's address and resets it:
// a server that accepted a token for another user refuses MAIL FROM.
func (s *smtpSession) command(email string) (string, error) {
	if err := s.s.SMTPCommand("MAIL FROM:<" + email + ">"); err != nil {
		return "", err
	}
	if err := s.s.SMTPCommand("RSET"); err != nil {
		return "", err
	}
	return "MAIL FROM:<" + email + "> accepted (then RSET)", nil
}

func (s *smtpSession) send(from, to string, msg []byte) (string, error) {
	if err := s.s.SMTPCommand("MAIL FROM:<" + from + ">"); err != nil {
		return "", err
	}
	if err := s.s.SMTPCommand("RCPT TO:<" + to + ">"); err != nil {
		return "", err
	}
	resp, err := s.s.SMTPData(msg)
	if err != nil {
		return "", err
	}
	return "sent a test message to " + to + ": " + resp, nil
}

func (s *smtpSession) close() {
	s.s.SMTPCommand("QUIT")
}
