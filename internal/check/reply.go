package check

import (
	"errors"

	"github.com/emersion/go-imap/v2"

	"github.com/mailkey/mailkey/internal/upstream"
	"github.com/mailkey/mailkey/internal/upstream/pop3"
)

// observeReply copies the server's answer out of a protocol error: the
// text, the response code (IMAP RFC 5530, POP3 RFC 2449/3206) or the SMTP
// reply and enhanced status code (RFC 3463), and the SASL error challenge.
func observeReply(o *Observation, err error) {
	var re *upstream.ReplyError
	var ie *imap.Error
	var pe *pop3.Error
	switch {
	case errors.As(err, &re):
		o.Reply, o.Code, o.SMTPCode, o.Failure = re.Reply, re.Code, re.SMTPCode, re.Failure
		// Before TLS only the greeting can say 554 (RFC 5321 §3.1) or 421.
		o.Greeting = re.Greeting || o.Step == StepTLS && (re.SMTPCode == 554 || re.SMTPCode == 421)
	case errors.As(err, &ie):
		o.Reply, o.Code = ie.Text, string(ie.Code)
		if o.Reply == "" {
			o.Reply = string(ie.Type)
		}
		o.Greeting = ie.Type == imap.StatusResponseTypeBye
	case errors.As(err, &pe):
		o.Reply, o.Code = pe.Line, pe.Code
	}
}
