package clitest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// muttScript is where Debian's mutt package puts mutt_oauth2.py.
const muttScript = "/usr/share/doc/mutt/examples/mutt_oauth2.py"

// stackFlags are the flags that point an imported account at the stack's mail servers and
// CA, which no other tool's file names.
func stackFlags(s *e2e.Stack) []string {
	return []string{"--imap", s.IMAP, "--pop3", s.POP3, "--smtp", s.Submission, "--ca-file", s.CAFile}
}

// TestImportMuttOAuth2 runs mutt's own mutt_oauth2.py against the stack, with a registration
// for the stack's provider, to make a grant, once keeping the token file in clear and once
// encrypted with gpg as the script does by default; mailkey import then takes the grant over:
// mailkey test logs in with it, and its refresh token still refreshes.
func TestImportMuttOAuth2(t *testing.T) {
	python := mailkeytest.NeedProgram(t, "python3", "python3")
	if _, err := os.Stat(muttScript); err != nil {
		mailkeytest.Missing(t, muttScript, "mutt")
	}
	s := e2e.Start(t, e2e.WithAccessTokenTTL(time.Hour))
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("refresh token", 2)

	for _, tc := range []struct {
		name string
		gpg  bool
	}{{"plain", false}, {"gpg", true}} {
		t.Run(tc.name, func(t *testing.T) {
			m := &mk{mailkeytest.New(t, leaks, "")}
			encrypt, decrypt := "['cat']", "['cat']"
			var importFlags []string
			if tc.gpg {
				gnupg := newGnuPGHome(t, ctx, m)
				encrypt = "['gpg', '--batch', '--encrypt', '--recipient', '" + gnupg + "']"
				decrypt = "['gpg', '--batch', '--decrypt']"
				importFlags = []string{"--decrypt-cmd", "gpg --batch --quiet --decrypt"}
			}
			script := patchedMuttScript(t, s, m.Dir, encrypt, decrypt)
			tokenFile := filepath.Join(m.Dir, "alice.tokens")
			runMuttAuthorize(t, ctx, s, m, python, script, tokenFile)

			imported := m.Must(ctx, "", append(append([]string{"import", tokenFile,
				"--provider", "generic", "--issuer", s.Issuer,
				"--client-id", e2e.ClientConfidential, "--client-secret", e2e.ClientConfidentialSecret},
				stackFlags(s)...), importFlags...)...)
			for _, want := range []string{"imported account " + e2e.Alice, "mapped: email from the token file", "next: mailkey test " + e2e.Alice} {
				if !strings.Contains(imported.Stderr, want) {
					t.Errorf("mailkey import does not say %q:\n%s", want, imported.Stderr)
				}
			}
			m.Must(ctx, "", "test", e2e.Alice)

			// The imported refresh token refreshes: an expired access token is replaced, and
			// the new one logs in.
			before := m.Token(ctx, e2e.Alice)
			m.EditRecord(ctx, e2e.Alice, mailkeytest.Expired)
			after := m.Token(ctx, e2e.Alice)
			if after == before {
				t.Fatal("mailkey token printed the expired token again")
			}
			if err := e2e.IMAPLogin(ctx, e2e.Loopback(s.IMAPPort), e2e.StartTLS, s.TLSConfig(), e2e.Alice, after, e2e.XOAUTH2); err != nil {
				t.Errorf("IMAP login with the refreshed token: %v", err)
			}

			// A second import does not overwrite the account.
			again := m.Run(ctx, "", append([]string{"import", tokenFile, "--client-id", e2e.ClientConfidential}, importFlags...)...)
			if again.Code == 0 || !strings.Contains(again.Stderr, "already exists") || !strings.Contains(again.Stderr, "--force") {
				t.Errorf("a second import: %s", again)
			}
		})
	}
}

// patchedMuttScript writes a copy of mutt_oauth2.py with the encryption and decryption pipes
// given and a registration "stack" for the stack's provider, which the script (like every
// copy users edit) names in its registrations dictionary.
func patchedMuttScript(t *testing.T, s *e2e.Stack, dir, encrypt, decrypt string) string {
	t.Helper()
	b, err := os.ReadFile(muttScript)
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	ep := s.Endpoint()
	reg := fmt.Sprintf(`registrations = {
    'stack': {
        'authorize_endpoint': %q,
        'devicecode_endpoint': %q,
        'token_endpoint': %q,
        'redirect_uri': %q,
        'imap_endpoint': '127.0.0.1',
        'pop_endpoint': '127.0.0.1',
        'smtp_endpoint': '127.0.0.1',
        'sasl_method': 'XOAUTH2',
        'scope': 'openid email mail offline_access',
        'client_id': %q,
        'client_secret': %q,
    },
`, ep.AuthURL, ep.DeviceAuthURL, ep.TokenURL, "http://"+e2e.ClosedAddr(t)+"/", e2e.ClientConfidential, e2e.ClientConfidentialSecret)
	for old, repl := range map[string]string{
		"registrations = {\n": reg,
		"ENCRYPTION_PIPE = ['gpg', '--encrypt', '--recipient', 'YOUR_GPG_IDENTITY']": "ENCRYPTION_PIPE = " + encrypt,
		"DECRYPTION_PIPE = ['gpg', '--decrypt']":                                     "DECRYPTION_PIPE = " + decrypt,
	} {
		if !strings.Contains(src, old) {
			t.Fatalf("%s has no %q: the script changed", muttScript, old)
		}
		src = strings.Replace(src, old, repl, 1)
	}
	p := filepath.Join(dir, "mutt_oauth2.py")
	if err := os.WriteFile(p, []byte(src), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// runMuttAuthorize runs mutt_oauth2.py --authorize with the authcode flow as its user would:
// it answers the script's questions, signs in as alice at the URL the script prints, and
// pastes the code from the redirect back.
func runMuttAuthorize(t *testing.T, ctx context.Context, s *e2e.Stack, m *mk, python, script, tokenFile string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, python, "-u", script, "--authorize", tokenFile)
	cmd.Env, cmd.Dir = m.Vars, m.Dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(stdin, "stack\nauthcode\n%s\n", e2e.Alice)
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	authURL := ""
	for authURL == "" && sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		// The script's questions end in no newline: the URL follows the last answer.
		if i := strings.Index(line, s.Endpoint().AuthURL+"?"); i >= 0 {
			authURL = line[i:]
		}
	}
	if authURL == "" {
		cmd.Wait()
		t.Fatalf("mutt_oauth2.py printed no authorization URL:\n%s\nstderr:\n%s", out.String(), stderr.String())
	}
	redirect, err := s.BrowserLogin(ctx, authURL, e2e.Alice, e2e.AlicePassword)
	if err != nil {
		t.Fatal(err)
	}
	code := redirect.Query().Get("code")
	if code == "" {
		t.Fatalf("no code in the redirect (error %q)", redirect.Query().Get("error"))
	}
	m.Leaks.Secret("authorization code", code)
	fmt.Fprintln(stdin, code)
	stdin.Close()
	rest, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("mutt_oauth2.py --authorize: %v\nstderr:\n%s", err, stderr.String())
	}
	// The script prints the access token last; it is a secret from here on.
	lines := strings.Fields(string(rest))
	if len(lines) == 0 {
		t.Fatal("mutt_oauth2.py printed no access token")
	}
	m.Leaks.Secret("access token", lines[len(lines)-1])
	muttSecrets(t, m, tokenFile)
}

// muttSecrets reads the tokens mutt_oauth2.py stored, for the leak check, through the same
// decryption as the script (gpg or none).
func muttSecrets(t *testing.T, m *mk, tokenFile string) {
	t.Helper()
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(strings.TrimSpace(string(b)), "{") {
		cmd := exec.Command("gpg", "--batch", "--quiet", "--decrypt", tokenFile)
		cmd.Env = m.Vars
		if b, err = cmd.Output(); err != nil {
			t.Fatalf("gpg --decrypt the token file: %v", err)
		}
	}
	for _, key := range []string{"access_token", "refresh_token"} {
		v := jsonString(t, b, key)
		if v == "" {
			t.Fatalf("the token file holds no %s", key)
		}
		m.Leaks.Secret(strings.ReplaceAll(key, "_", " "), v)
	}
}

// newGnuPGHome makes a GnuPG home with one key without a passphrase, as a mutt_oauth2.py user
// has, for m's commands, and returns the key's address. Its agent is stopped at the end.
func newGnuPGHome(t *testing.T, ctx context.Context, m *mk) string {
	t.Helper()
	mailkeytest.NeedProgram(t, "gpg", "gnupg")
	home, err := os.MkdirTemp("", "gnupg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	m.Vars = append(m.Vars, "GNUPGHOME="+home)
	t.Cleanup(func() {
		kill := exec.Command("gpgconf", "--kill", "all")
		kill.Env = m.Vars
		kill.Run()
		os.RemoveAll(home)
	})
	const uid = "mutt user <mutt@example.test>"
	gen := exec.CommandContext(ctx, "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
		"--quick-generate-key", uid, "default", "default", "never")
	gen.Env = m.Vars
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("gpg --quick-generate-key: %v\n%s", err, out)
	}
	return "mutt@example.test"
}

// jsonString returns the string field key of a JSON object.
func jsonString(t *testing.T, b []byte, key string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	s, _ := m[key].(string)
	return s
}
