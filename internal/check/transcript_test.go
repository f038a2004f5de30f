package check

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/upstream"
)

func TestTranscriptRedacts(t *testing.T) {
	const tok = "ya29.secret-token-value"
	tests := []struct {
		name  string
		proto provider.Protocol
		in    []struct {
			dir  upstream.Direction
			line string
		}
		want string
	}{
		{"imap sasl-ir and error challenge", provider.IMAP, []struct {
			dir  upstream.Direction
			line string
		}{
			{upstream.Sent, "T3 AUTHENTICATE XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciB4AQE="},
			{upstream.Received, "+ eyJzdGF0dXMiOiI0MDEifQ=="},
			{upstream.Sent, "="},
			{upstream.Received, "T3 NO [AUTHENTICATIONFAILED] Authentication failed."},
			{upstream.Sent, "T4 LIST \"\" \"%\""},
		}, "imap: C: T3 AUTHENTICATE XOAUTH2 <redacted>\n" +
			"imap: S: + eyJzdGF0dXMiOiI0MDEifQ==\n" +
			"imap: C: <redacted>\n" +
			"imap: S: T3 NO [AUTHENTICATIONFAILED] Authentication failed.\n" +
			"imap: C: T4 LIST \"\" \"%\"\n"},
		{"smtp two-step auth", provider.SMTP, []struct {
			dir  upstream.Direction
			line string
		}{
			{upstream.Sent, "AUTH XOAUTH2"},
			{upstream.Received, "334 "},
			{upstream.Sent, "dXNlcj1hbGljZQFhdXRoPUJlYXJlciB4AQE="},
			{upstream.Received, "235 2.7.0 Accepted"},
			{upstream.Sent, "MAIL FROM:<alice@example.test>"},
		}, "smtp: C: AUTH XOAUTH2\n" +
			"smtp: S: 334 \n" +
			"smtp: C: <redacted>\n" +
			"smtp: S: 235 2.7.0 Accepted\n" +
			"smtp: C: MAIL FROM:<alice@example.test>\n"},
		{"pop3 oauthbearer failure", provider.POP3, []struct {
			dir  upstream.Direction
			line string
		}{
			{upstream.Sent, "AUTH OAUTHBEARER bixhPWFsaWNlLAFhdXRoPUJlYXJlciB4AQE="},
			{upstream.Received, "+ eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0="},
			{upstream.Sent, "AQ=="},
			{upstream.Received, "-ERR [AUTH] Authentication failed."},
			{upstream.Sent, "QUIT"},
		}, "pop3: C: AUTH OAUTHBEARER <redacted>\n" +
			"pop3: S: + eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=\n" +
			"pop3: C: AQ==\n" +
			"pop3: S: -ERR [AUTH] Authentication failed.\n" +
			"pop3: C: QUIT\n"},
		{"a known secret anywhere", provider.IMAP, []struct {
			dir  upstream.Direction
			line string
		}{
			{upstream.Received, "* OK echo ya29.secret-token-value"},
		}, "imap: S: * OK echo <redacted>\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tr := newTranscript(&b, tc.proto)
			tr.secret(tok)
			for _, in := range tc.in {
				tr.hear(in.dir, in.line)
			}
			tr.end()
			if b.String() != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

// A nil transcript (no --verbose) accepts every call.
func TestTranscriptNil(t *testing.T) {
	var tr *transcript
	tr.secret("x")
	tr.note("y")
	tr.hear(upstream.Sent, "z")
	tr.end()
	if tr.hook() != nil {
		t.Error("a nil transcript must give upstream no hook")
	}
}

// Once ended, a transcript writes nothing more: a library goroutine that
// outlives the check (go-imap's background CAPABILITY) must not reach the
// caller's writer.
func TestTranscriptEnded(t *testing.T) {
	var out bytes.Buffer
	tr := newTranscript(&out, provider.IMAP)
	tr.hear(upstream.Sent, "a NOOP")
	tr.end()
	want := out.String()
	if !strings.Contains(want, "a NOOP") {
		t.Fatalf("the line before the end is missing: %q", want)
	}
	tr.hear(upstream.Sent, "b CAPABILITY")
	tr.note("late")
	tr.end()
	if out.String() != want {
		t.Errorf("written after the end: %q", strings.TrimPrefix(out.String(), want))
	}
}
