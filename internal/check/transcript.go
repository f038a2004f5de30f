package check

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"

	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/upstream"
)

// Redacted stands in the transcript for everything of the SASL exchange
// that could carry a credential.
const Redacted = upstream.Redacted

// maxTranscriptLine bounds one transcript line; longer lines are cut.
const maxTranscriptLine = 1000

// transcript writes one protocol's exchange, line by line, prefixed with
// the protocol and the direction. Package upstream hands it the lines of
// the login and of the command after it. Client lines of an authentication
// exchange are redacted; so is any known secret, wherever it appears.
type transcript struct {
	mu      sync.Mutex
	w       io.Writer
	proto   provider.Protocol
	secrets []string
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
	return &transcript{w: w, proto: proto}
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
	t.hear(upstream.Note, fmt.Sprintf(format, args...))
}

// hear takes one line that went one way on the wire, or a note.
func (t *transcript) hear(dir upstream.Direction, s string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return
	}
	switch dir {
	case upstream.Note:
		fmt.Fprintf(t.w, "%s: -- %s\n", t.proto, t.redactSecrets(s))
		return
	case upstream.Sent:
		s = t.redactClient(s)
	default:
		t.endAuth(s)
	}
	s = t.redactSecrets(s)
	if len(s) > maxTranscriptLine {
		s = s[:maxTranscriptLine] + "…"
	}
	fmt.Fprintf(t.w, "%s: %c: %s\n", t.proto, dir, strings.Map(printable, s))
}

// hook is the transcript as package upstream calls it; nil without one.
func (t *transcript) hook() func(upstream.Direction, string) {
	if t == nil {
		return nil
	}
	return t.hear
}

// end ends the transcript: what comes later is dropped.
func (t *transcript) end() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ended = true
}

// The transcript's patterns are compiled on first use, not at the start of every mailkey command.
var (
	authCommandRE = lazyRegexp(`(?i)^((?:\S+ )?(?:AUTHENTICATE|AUTH) +[A-Z0-9_-]+) +\S.*$`)
	imapTaggedRE  = lazyRegexp(`(?i)^[A-Za-z0-9]+ (OK|NO|BAD)( |$)`)
)

func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
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
