package upstream

import (
	"strings"

	"github.com/mailkey/mailkey/internal/sasl"
)

// ReplyError is a server's answer that ended the login. Its text is
// sanitized and never holds the token or the initial response.
type ReplyError struct {
	// Step is what was being done, in the protocol's words: greeting,
	// starttls, capability, ehlo or auth.
	Step string
	// Line is the server's (last) line.
	Line string
	// Reply is the server's words: the text after the status and the
	// response code (IMAP, SMTP), or the whole status line (POP3).
	Reply string
	// Code is the IMAP response code (RFC 5530), the POP3 extended
	// response code (RFC 2449, RFC 3206) or the SMTP enhanced status code
	// (RFC 3463, such as "5.7.139"); "" when there is none.
	Code string
	// SMTPCode is the SMTP reply code.
	SMTPCode int
	// Greeting: the server refused the connection in its greeting.
	Greeting bool
	// Temporary: the server says to try again later (IMAP [UNAVAILABLE],
	// POP3 [SYS/TEMP], [IN-USE] or [LOGIN-DELAY], SMTP 4xx).
	Temporary bool
	// Refused: the server refused the token itself. A forced refresh may
	// help.
	Refused bool
	// Failure is the SASL error challenge that came before a refusal.
	Failure *sasl.Failure
}

func (e *ReplyError) Error() string {
	if !e.Refused {
		return e.Step + ": server answered: " + e.Line
	}
	s := "server refused the token: " + e.Line
	if e.Failure != nil {
		s += " (" + e.Failure.String() + ")"
	}
	return s
}

// imapReply is the ReplyError for an IMAP status line ("tag NO [CODE]
// text", "* BYE text").
func (w *wire) imapReply(step, line string) *ReplyError {
	l := w.quote(line)
	_, rest, _ := strings.Cut(l, " ")   // the tag or "*"
	_, rest, _ = strings.Cut(rest, " ") // the status
	e := &ReplyError{Step: step, Line: l, Reply: rest}
	if code, text, ok := strings.Cut(strings.TrimPrefix(rest, "["), "]"); ok && strings.HasPrefix(rest, "[") {
		code, _, _ = strings.Cut(code, " ")
		e.Code, e.Reply = strings.ToUpper(code), strings.TrimSpace(text)
	}
	e.Temporary = e.Code == "UNAVAILABLE"
	return e
}

// smtpReplyError is the ReplyError for an SMTP reply's last line ("535
// 5.7.139 text").
func (w *wire) smtpReplyError(step string, code int, line string) *ReplyError {
	l := w.quote(line)
	e := &ReplyError{Step: step, Line: l, SMTPCode: code, Reply: strings.TrimSpace(l[min(len(l), 4):]), Temporary: code/100 == 4}
	if enh, text, _ := strings.Cut(e.Reply, " "); isEnhancedCode(enh, code) {
		e.Code, e.Reply = enh, text
	}
	return e
}

// isEnhancedCode reports whether s is an RFC 3463 status code of the same
// class as the reply: "5.7.139" for a 535.
func isEnhancedCode(s string, code int) bool {
	f := strings.Split(s, ".")
	if len(f) != 3 || len(f[0]) != 1 || f[0][0] != byte('0'+code/100) {
		return false
	}
	for _, n := range f {
		if n == "" || len(n) > 3 || strings.Trim(n, "0123456789") != "" {
			return false
		}
	}
	return true
}
