package upstream

import (
	"strings"
	"testing"
)

func TestReplies(t *testing.T) {
	w := &wire{o: &Options{}, secrets: &secrets{}}
	w.secrets.add("ya29.secret")
	for _, tc := range []struct {
		got  *ReplyError
		want ReplyError
	}{
		{w.imapReply("auth", "m2 NO [AUTHENTICATIONFAILED] Authentication failed."),
			ReplyError{Code: "AUTHENTICATIONFAILED", Reply: "Authentication failed."}},
		{w.imapReply("auth", "m2 NO [UNAVAILABLE] Temporary authentication failure"),
			ReplyError{Code: "UNAVAILABLE", Reply: "Temporary authentication failure", Temporary: true}},
		{w.imapReply("greeting", "* BYE too many connections"), ReplyError{Reply: "too many connections"}},
		{w.imapReply("auth", "m2 NO bad token ya29.secret"), ReplyError{Reply: "bad token [redacted]"}},
		{w.smtpReplyError("auth", 535, "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant."),
			ReplyError{SMTPCode: 535, Code: "5.7.139", Reply: "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant."}},
		{w.smtpReplyError("auth", 454, "454 4.7.0 Temporary authentication failure"),
			ReplyError{SMTPCode: 454, Code: "4.7.0", Reply: "Temporary authentication failure", Temporary: true}},
		// A status code of another class is text, not an enhanced code.
		{w.smtpReplyError("auth", 535, "535 4.7.0 odd"), ReplyError{SMTPCode: 535, Reply: "4.7.0 odd"}},
		{w.smtpReplyError("greeting", 554, "554"), ReplyError{SMTPCode: 554}},
	} {
		g := tc.got
		if g.Code != tc.want.Code || g.Reply != tc.want.Reply || g.SMTPCode != tc.want.SMTPCode || g.Temporary != tc.want.Temporary {
			t.Errorf("%q: got code %q reply %q smtp %d temporary %v, want %+v", g.Line, g.Code, g.Reply, g.SMTPCode, g.Temporary, tc.want)
		}
	}
}

// FuzzReplies: whatever a server sends, the reply parsers neither panic
// nor let a control character or a secret into what they return.
func FuzzReplies(f *testing.F) {
	for _, s := range []string{"m2 NO [AUTHENTICATIONFAILED] x", "* BYE", "535 5.7.139 x", "* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] ready", "[", "250-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		w := &wire{o: &Options{}, secrets: &secrets{}}
		w.secrets.add("ya29.secret")
		capsInCode(line)
		untaggedCaps(line)
		for _, e := range []*ReplyError{w.imapReply("auth", line), w.smtpReplyError("auth", 535, line)} {
			for _, s := range []string{e.Line, e.Reply, e.Code, e.Error()} {
				if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) || strings.Contains(s, "ya29.secret") {
					t.Fatalf("%q gave %q", line, s)
				}
			}
		}
	})
}
