package check

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"

	"github.com/mailkey/mailkey/internal/provider"
)

// Redacted stands in the transcript for everything of the SASL exchange
// that could carry a credential.
const Redacted = "<redacted>"

// maxTranscriptLine bounds one transcript line; longer lines are cut.
const maxTranscriptLine = 1000

// Directions of transcript bytes.
const (
	fromClient = 'C'
	fromServer = 'S'
	unknownDir = '?' // a library's debug stream mixes both: classify by line
)

// transcript writes one protocol's exchange, line by line, prefixed with
// the protocol and the direction. Client lines of an authentication
// exchange are redacted; so is any known secret, wherever it appears.
type transcript struct {
	mu      sync.Mutex
	w       io.Writer
	proto   provider.Protocol
	secrets []string
	partial map[byte]*bytes.Buffer
	inAuth  bool
	// ended: the protocol's check is over. A library goroutine that
	// outlives it (go-imap asks for CAPABILITY in the background) must not
	// write to the caller's writer any more.
	ended bool
}

func newTranscript(w io.Writer, proto provider.Protocol) *transcript {
	if w == nil {
		return nil
	}
	return &transcript{w: w, proto: proto, partial: map[byte]*bytes.Buffer{}}
}

// secret adds values that must never be written.
func (t *transcript) secret(values ...string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, v := range values {
		if len(v) >= 4 {
			t.secrets = append(t.secrets, v)
		}
	}
}

// note writes a line of commentary.
func (t *transcript) note(format string, args ...any) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return
	}
	fmt.Fprintf(t.w, "%s: -- %s\n", t.proto, t.redactSecrets(fmt.Sprintf(format, args...)))
}

// write takes bytes that went one way (or an unknown way) on the wire.
func (t *transcript) write(dir byte, b []byte) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return
	}
	buf := t.partial[dir]
	if buf == nil {
		buf = new(bytes.Buffer)
		t.partial[dir] = buf
	}
	buf.Write(b)
	for {
		i := bytes.IndexByte(buf.Bytes(), '\n')
		if i < 0 {
			if buf.Len() > 64<<10 { // a line without end: flush what we have
				t.line(dir, buf.String())
				buf.Reset()
			}
			return
		}
		line := strings.TrimRight(string(buf.Next(i+1)), "\r\n")
		t.line(dir, line)
	}
}

// end writes any partial lines and ends the transcript: what comes later
// is dropped.
func (t *transcript) end() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return
	}
	t.ended = true
	for dir, buf := range t.partial {
		if buf.Len() > 0 {
			t.line(dir, buf.String())
			buf.Reset()
		}
	}
}

// The transcript's patterns are compiled on first use, not at the start of every mailkey command.
var (
	authCommandRE = lazyRegexp(`(?i)^((?:\S+ )?(?:AUTHENTICATE|AUTH) +[A-Z0-9_-]+) +\S.*$`)
	imapTaggedRE  = lazyRegexp(`(?i)^[A-Za-z0-9]+ (OK|NO|BAD)( |$)`)
	smtpReplyRE   = lazyRegexp(`^[0-9]{3}([ -]|$)`)
)

func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// line writes one line. t.mu is held.
func (t *transcript) line(dir byte, s string) {
	if dir == unknownDir {
		dir = t.classify(s)
	}
	if dir == fromClient {
		s = t.redactClient(s)
	} else {
		t.endAuth(s)
	}
	s = t.redactSecrets(s)
	if len(s) > maxTranscriptLine {
		s = s[:maxTranscriptLine] + "…"
	}
	fmt.Fprintf(t.w, "%s: %c: %s\n", t.proto, dir, strings.Map(printable, s))
}

// classify tells server lines from client lines in a mixed stream.
func (t *transcript) classify(s string) byte {
	switch t.proto {
	case provider.IMAP:
		if strings.HasPrefix(s, "* ") || s == "+" || strings.HasPrefix(s, "+ ") || imapTaggedRE().MatchString(s) {
			return fromServer
		}
	case provider.SMTP:
		if smtpReplyRE().MatchString(s) {
			return fromServer
		}
	case provider.POP3:
		if strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-ERR") {
			return fromServer
		}
	}
	return fromClient
}

// redactClient hides the initial response of an AUTH command and every
// client line of the exchange that follows, except the empty line and
// the single 0x01 ("AQ==") that answer an error challenge and "*".
func (t *transcript) redactClient(s string) string {
	if m := authCommandRE().FindStringSubmatch(s); m != nil {
		t.inAuth = true
		return m[1] + " " + Redacted
	}
	if isAuthCommand(s) {
		t.inAuth = true
		return s
	}
	if t.inAuth && s != "" && s != "*" && s != "AQ==" {
		return Redacted
	}
	return s
}

func isAuthCommand(s string) bool {
	f := strings.Fields(strings.ToUpper(s))
	return len(f) >= 2 && (f[0] == "AUTH" || f[0] == "AUTHENTICATE" || f[1] == "AUTHENTICATE")
}

// endAuth ends the exchange at the server's final answer to it.
func (t *transcript) endAuth(s string) {
	if !t.inAuth {
		return
	}
	switch t.proto {
	case provider.IMAP:
		t.inAuth = !imapTaggedRE().MatchString(s)
	case provider.POP3:
		t.inAuth = strings.HasPrefix(s, "+ ") || s == "+"
	case provider.SMTP:
		t.inAuth = strings.HasPrefix(s, "334")
	}
}

func (t *transcript) redactSecrets(s string) string {
	for _, sec := range t.secrets {
		s = strings.ReplaceAll(s, sec, Redacted)
	}
	return s
}

func printable(r rune) rune {
	if r < 0x20 && r != '\t' || r == 0x7f {
		return -1
	}
	return r
}

// tap is a connection whose traffic goes to a transcript. After the
// client sends STLS or STARTTLS and the server's answer line has been
// read, it stops writing: what follows is TLS.
type tap struct {
	net.Conn
	t     *transcript
	mu    sync.Mutex
	armed bool
	muted bool
}

func tapConn(c net.Conn, t *transcript) net.Conn {
	if t == nil {
		return c
	}
	return &tap{Conn: c, t: t}
}

func (c *tap) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > 0 && !c.muted {
		c.t.write(fromServer, b[:n])
		if c.armed && bytes.IndexByte(b[:n], '\n') >= 0 {
			c.muted = true
			c.t.note("TLS handshake")
		}
	}
	return n, err
}

func (c *tap) Write(b []byte) (int, error) {
	c.mu.Lock()
	if !c.muted {
		c.t.write(fromClient, b)
		if cmd := strings.ToUpper(strings.TrimSpace(string(b))); cmd == "STLS" || cmd == "STARTTLS" {
			c.armed = true
		}
	}
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// mixedWriter feeds a library's debug stream, which holds both
// directions, to the transcript.
type mixedWriter struct{ t *transcript }

func (w mixedWriter) Write(b []byte) (int, error) {
	w.t.write(unknownDir, b)
	return len(b), nil
}
