package check

import (
	"errors"
	"fmt"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-smtp"

	"github.com/mailkey/mailkey/internal/pop3"
)

// observeReply copies the server's answer out of a protocol error: the
// text, the response code (IMAP RFC 5530, POP3 RFC 2449/3206) or the SMTP
// reply and enhanced status code (RFC 3463).
func observeReply(o *Observation, err error) {
	var ie *imap.Error
	var pe *pop3.Error
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &ie):
		o.Reply, o.Code = ie.Text, string(ie.Code)
		if o.Reply == "" {
			o.Reply = string(ie.Type)
		}
		o.Greeting = ie.Type == imap.StatusResponseTypeBye
	case errors.As(err, &pe):
		o.Reply, o.Code = pe.Line, pe.Code
		o.Greeting = pe.Command == ""
	case errors.As(err, &se):
		o.Reply, o.SMTPCode = se.Message, se.Code
		// Before TLS only the greeting can say 554 (RFC 5321 §3.1) or 421.
		o.Greeting = o.Step == StepTLS && (se.Code == 554 || se.Code == 421)
		if se.EnhancedCode != (smtp.EnhancedCode{}) && se.EnhancedCode != smtp.NoEnhancedCode {
			c := se.EnhancedCode
			o.Code = fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
		}
	}
}
