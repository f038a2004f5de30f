package mailkeytest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The leak check must be able to fail: a token in stderr, in JSON on stdout or in a state
// file is found, and named without being quoted.
func TestLeakCheckFinds(t *testing.T) {
	dir := t.TempDir()
	l := newLeaks()
	l.Secret("access token", "at-0123456789", "short")
	l.Secret("refresh token", "rt-0123456789")
	l.Output("stderr of mailkey token", "mailkey: error: bad token at-0123456789\n")
	l.Output("stdout of mailkey test --json", `{"detail":"at-0123456789"}`)
	l.Output("stderr of mailkey status", "mailkey: short\n")
	l.Output("stderr of mailkey config", "mailkey: wrong password alice-pass\n")
	if err := os.WriteFile(filepath.Join(dir, "tokens"), []byte("x rt-0123456789 x"), 0o600); err != nil {
		t.Fatal(err)
	}
	l.StateDir(dir)
	got := strings.Join(l.Findings(), "\n")
	for _, want := range []string{
		"access token (13 bytes) appears in stderr of mailkey token",
		"access token (13 bytes) appears in stdout of mailkey test --json",
		"refresh token (13 bytes) appears in state file",
		"password (10 bytes) appears in stderr of mailkey config",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("findings lack %q", want)
		}
	}
	if strings.Contains(got, "status") || strings.Contains(got, "0123456789") || strings.Contains(got, "alice-pass") {
		t.Errorf("findings name a clean output or quote a secret")
	}
	if t.Failed() {
		t.Logf("findings:\n%s", got)
	}
	if f := l.Scan("mutt debug log", "AUTH at-0123456789"); len(f) != 1 {
		t.Errorf("Scan found %q, want one access token", f)
	}
	if n := len(l.Findings()); n != 4 {
		t.Errorf("Scan changed the findings: %d, want 4", n)
	}
}

// A check that saw too few recorded secrets fails; the secrets it knew from the start do not
// count.
func TestLeakCheckRequire(t *testing.T) {
	l := newLeaks()
	l.Require("access token", 1)
	l.Require("", 2)
	l.Secret("password", "alice-pass")
	if got := l.unmet(); len(got) != 2 {
		t.Fatalf("unmet with nothing recorded: %q, want two", got)
	}
	l.Secret("access token", "at-0123456789")
	if got := l.unmet(); len(got) != 1 || !strings.Contains(got[0], "saw 1 recorded secret values, want at least 2") {
		t.Fatalf("unmet with one token: %q", got)
	}
	l.Secret("refresh token", "rt-0123456789")
	if got := l.unmet(); len(got) != 0 {
		t.Fatalf("unmet: %q", got)
	}
}

// A failure message does not show what mailkey token printed.
func TestResultStringHidesSecretStdout(t *testing.T) {
	r := Result{Stdout: "at-0123456789\n", Stderr: "mailkey: warning\n", secretStdout: printsSecret([]string{"token", "work"})}
	if s := r.String(); strings.Contains(s, "0123456789") || !strings.Contains(s, "mailkey: warning") {
		t.Errorf("String:\n%s", s)
	}
	r.secretStdout = printsSecret([]string{"status", "--json"})
	if s := r.String(); !strings.Contains(s, "at-0123456789") {
		t.Errorf("String hides the stdout of mailkey status:\n%s", s)
	}
	if !printsSecret([]string{"password", "add", "work"}) || printsSecret([]string{"password", "list"}) {
		t.Error("printsSecret is wrong about mailkey password")
	}
}

// Redact hides every known secret, a longer one whole even when it holds a shorter one, and
// leaves the rest of the text as it was.
func TestRedact(t *testing.T) {
	l := newLeaks()
	l.Secret("access token", "at-0123456789")
	l.Secret("SASL initial response", "ir-at-0123456789-end")
	got := l.Redact("LOGIN alice alice-pass\nAUTH ir-at-0123456789-end\nBearer at-0123456789 done")
	want := "LOGIN alice <password>\nAUTH <SASL initial response>\nBearer <access token> done"
	if got != want {
		t.Errorf("Redact = %q, want %q", got, want)
	}
}
