package mailkeytest

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mailkey/mailkey/test/e2e"
)

// minSecretLen: shorter values would match output by chance.
const minSecretLen = 8

// Leaks collects every secret a test saw (tokens, refresh tokens, authorization codes,
// client secrets, passwords, app passwords) and everything mailkey printed that is not meant
// to carry one, and at the end of the test fails it if any secret occurs in that output or
// in plain text in a state folder. It never quotes a secret it finds.
type Leaks struct {
	mu       sync.Mutex
	secrets  map[string]string // secret → what it is
	recorded map[string]bool   // secrets handed to Secret that NewLeaks did not know
	known    map[string]bool   // secrets NewLeaks knew from the start
	outputs  []output
	dirs     []string
	required map[string]int // kind ("" for any) → how many secrets the test must record
}

type output struct{ label, text string }

// NewLeaks returns a check that runs when t ends (after its subtests). It knows the stack's
// user passwords and client secrets from the start.
func NewLeaks(t *testing.T) *Leaks {
	l := newLeaks()
	t.Cleanup(func() {
		for _, p := range append(l.unmet(), l.Findings()...) {
			t.Error(p)
		}
	})
	return l
}

func newLeaks() *Leaks {
	l := &Leaks{secrets: map[string]string{}, recorded: map[string]bool{}, known: map[string]bool{}, required: map[string]int{}}
	l.add(false, "password", e2e.AlicePassword, e2e.BobPassword, e2e.CarolPassword)
	l.add(false, "client secret", e2e.ClientDaemonSecret, e2e.ClientConfidentialSecret)
	return l
}

// Secret records values of one kind (what: "access token", …) that must never be printed.
// Values shorter than 8 bytes are ignored: they would match by chance.
func (l *Leaks) Secret(what string, values ...string) { l.add(true, what, values...) }

func (l *Leaks) add(recorded bool, what string, values ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range values {
		if len(v) >= minSecretLen {
			l.secrets[v] = what
			if !recorded {
				l.known[v] = true
			} else if !l.known[v] {
				l.recorded[v] = true
			}
		}
	}
}

// Output records text mailkey (or a program it served) printed; label says where it came
// from. Empty text is ignored.
func (l *Leaks) Output(label, text string) {
	if text == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outputs = append(l.outputs, output{label, text})
}

// StateDir adds a folder whose files, as they are when the check runs, must not hold a secret
// in plain text.
func (l *Leaks) StateDir(dir string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dirs = append(l.dirs, dir)
}

// Require makes the check fail unless the test recorded at least n secrets of kind what
// with Secret ("" counts every kind): a check that saw nothing proves nothing. The passwords
// and client secrets NewLeaks knows from the start do not count.
func (l *Leaks) Require(what string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.required[what] = max(l.required[what], n)
}

// unmet says which of the Require calls the recorded secrets do not satisfy.
func (l *Leaks) unmet() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for what, n := range l.required {
		got := 0
		for s := range l.recorded {
			if what == "" || l.secrets[s] == what {
				got++
			}
		}
		if got < n {
			kind := what
			if kind == "" {
				kind = "secret"
			}
			out = append(out, fmt.Sprintf("the leak check saw %d recorded %s values, want at least %d: it proves nothing", got, kind, n))
		}
	}
	return out
}

// Findings says which kind of secret appears in which output or state file; it never quotes
// the secret.
func (l *Leaks) Findings() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	outs := append([]output(nil), l.outputs...)
	for _, d := range l.dirs {
		filepath.WalkDir(d, func(p string, de fs.DirEntry, err error) error {
			if err == nil && de.Type().IsRegular() {
				if b, err := os.ReadFile(p); err == nil {
					outs = append(outs, output{"state file " + p, string(b)})
				}
			}
			return nil
		})
	}
	var found []string
	for _, o := range outs {
		found = append(found, l.scan(o.label, o.text)...)
	}
	return found
}

// Scan says which kind of secret appears in text, without recording text as output: for
// logs of other programs, which may hold what they sent.
func (l *Leaks) Scan(label, text string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.scan(label, text)
}

// Redact returns text with every secret the check knows replaced by <what>, for failure
// messages that show another program's output or log.
func (l *Leaks) Redact(text string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Longest first: a secret that holds another is replaced whole.
	secrets := slices.SortedFunc(maps.Keys(l.secrets), func(a, b string) int { return len(b) - len(a) })
	for _, s := range secrets {
		text = strings.ReplaceAll(text, s, "<"+l.secrets[s]+">")
	}
	return text
}

// scan is Scan with l.mu held.
func (l *Leaks) scan(label, text string) []string {
	var found []string
	for s, what := range l.secrets {
		if strings.Contains(text, s) {
			found = append(found, fmt.Sprintf("a %s (%d bytes) appears in %s", what, len(s), label))
		}
	}
	return found
}
