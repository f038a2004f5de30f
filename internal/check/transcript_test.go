package check

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/testwait"
)

func TestTranscriptRedacts(t *testing.T) {
	const tok = "ya29.secret-token-value"
	tests := []struct {
		name  string
		proto provider.Protocol
		in    []struct {
			dir  byte
			line string
		}
		want string
	}{
		{"imap sasl-ir and error challenge", provider.IMAP, []struct {
			dir  byte
			line string
		}{
			{unknownDir, "T3 AUTHENTICATE XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciB4AQE=\r\n"},
			{unknownDir, "+ eyJzdGF0dXMiOiI0MDEifQ==\r\n"},
			{unknownDir, "=\r\n"},
			{unknownDir, "T3 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"},
			{unknownDir, "T4 LIST \"\" \"%\"\r\n"},
		}, "imap: C: T3 AUTHENTICATE XOAUTH2 <redacted>\n" +
			"imap: S: + eyJzdGF0dXMiOiI0MDEifQ==\n" +
			"imap: C: <redacted>\n" +
			"imap: S: T3 NO [AUTHENTICATIONFAILED] Authentication failed.\n" +
			"imap: C: T4 LIST \"\" \"%\"\n"},
		{"smtp two-step auth", provider.SMTP, []struct {
			dir  byte
			line string
		}{
			{unknownDir, "AUTH XOAUTH2\r\n"},
			{unknownDir, "334 \r\n"},
			{unknownDir, "dXNlcj1hbGljZQFhdXRoPUJlYXJlciB4AQE=\r\n"},
			{unknownDir, "235 2.7.0 Accepted\r\n"},
			{unknownDir, "MAIL FROM:<alice@example.test>\r\n"},
		}, "smtp: C: AUTH XOAUTH2\n" +
			"smtp: S: 334 \n" +
			"smtp: C: <redacted>\n" +
			"smtp: S: 235 2.7.0 Accepted\n" +
			"smtp: C: MAIL FROM:<alice@example.test>\n"},
		{"pop3 oauthbearer failure", provider.POP3, []struct {
			dir  byte
			line string
		}{
			{fromClient, "AUTH OAUTHBEARER bixhPWFsaWNlLAFhdXRoPUJlYXJlciB4AQE=\r\n"},
			{fromServer, "+ eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=\r\n"},
			{fromClient, "AQ==\r\n"},
			{fromServer, "-ERR [AUTH] Authentication failed.\r\n"},
			{fromClient, "QUIT\r\n"},
		}, "pop3: C: AUTH OAUTHBEARER <redacted>\n" +
			"pop3: S: + eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=\n" +
			"pop3: C: AQ==\n" +
			"pop3: S: -ERR [AUTH] Authentication failed.\n" +
			"pop3: C: QUIT\n"},
		{"a known secret anywhere, split across writes", provider.IMAP, []struct {
			dir  byte
			line string
		}{
			{fromServer, "* OK echo ya29.secret-"},
			{fromServer, "token-value\r\n"},
		}, "imap: S: * OK echo <redacted>\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tr := newTranscript(&b, tc.proto)
			tr.secret(tok)
			for _, in := range tc.in {
				tr.write(in.dir, []byte(in.line))
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
	tr.write(fromClient, []byte("z\n"))
	tr.end()
	if c := tapConn(nil, tr); c != nil {
		t.Error("tapConn with a nil transcript must return the connection itself")
	}
}

// The tap stops at STARTTLS: what follows the server's answer is TLS.
func TestTapMutesAfterSTARTTLS(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	var b bytes.Buffer
	tr := newTranscript(&b, provider.SMTP)
	c := tapConn(client, tr)
	go func() {
		buf := make([]byte, 100)
		server.Read(buf) // STARTTLS
		server.Write([]byte("220 2.0.0 Ready to start TLS\r\n"))
		server.Read(buf)
		server.Write([]byte("\x16\x03\x01binary"))
	}()
	c.SetDeadline(testwait.Deadline(t)) // keeps a broken test from hanging
	c.Write([]byte("STARTTLS\r\n"))
	buf := make([]byte, 100)
	c.Read(buf)
	c.Write([]byte("\x16\x03\x01client hello"))
	c.Read(buf)
	tr.end()
	got := b.String()
	if !strings.Contains(got, "smtp: S: 220 2.0.0 Ready to start TLS\n") || strings.Contains(got, "hello") || strings.Contains(got, "binary") {
		t.Errorf("transcript:\n%s", got)
	}
}

// Once ended, a transcript writes nothing more: a library goroutine that
// outlives the check (go-imap's background CAPABILITY) must not reach the
// caller's writer.
func TestTranscriptEnded(t *testing.T) {
	var out bytes.Buffer
	tr := newTranscript(&out, provider.IMAP)
	tr.write(fromClient, []byte("a NOOP\r\npartial"))
	tr.end()
	want := out.String()
	if !strings.Contains(want, "a NOOP") || !strings.Contains(want, "partial") {
		t.Fatalf("end did not write the pending lines: %q", want)
	}
	tr.write(fromClient, []byte("b CAPABILITY\r\n"))
	tr.note("late")
	tr.end()
	if out.String() != want {
		t.Errorf("written after the end: %q", strings.TrimPrefix(out.String(), want))
	}
}
