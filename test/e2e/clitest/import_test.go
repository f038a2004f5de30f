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

	"filippo.io/age"

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

// proxyEncrypt is email-oauth2-proxy's Cryptographer (emailproxy.py), run with Python's
// cryptography as the proxy runs it: a Fernet key from PBKDF2-HMAC-SHA256 of the password with
// a random salt and the proxy's iteration count. It reads the password and the values on
// standard input, a line each, and prints the base64 salt and the encrypted values.
const proxyEncrypt = `
import base64, os, sys
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
lines = sys.stdin.read().split('\n')
password, values = lines[0], lines[1:3]
salt = os.urandom(16)
key = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=int(sys.argv[1])).derive(password.encode('utf-8'))
fernet = Fernet(base64.urlsafe_b64encode(key))
print(base64.b64encode(salt).decode('utf-8'))
for v in values:
    print(fernet.encrypt(v.encode('utf-8')).decode('utf-8'))
`

// proxyIterations is emailproxy.py's Cryptographer.ITERATIONS.
const proxyIterations = 1_200_000

// TestImportEmailOAuth2Proxy imports a grant the stack issued from email-oauth2-proxy's
// configuration, written in its documented format with its tokens encrypted as the proxy
// encrypts them: a wrong password is refused and writes nothing; the right one, on standard
// input, configures the account from the file (provider endpoints, client, servers), and
// mailkey test passes; the imported refresh token refreshes.
func TestImportEmailOAuth2Proxy(t *testing.T) {
	python := mailkeytest.NeedProgram(t, "python3", "python3")
	if err := exec.Command(python, "-c", "import cryptography").Run(); err != nil {
		mailkeytest.Missing(t, "Python's cryptography", "python3-cryptography")
	}
	s := e2e.Start(t, e2e.WithAccessTokenTTL(time.Hour))
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("refresh token", 1)
	m := &mk{mailkeytest.New(t, leaks, "")}

	tok, err := s.AuthCodeToken(ctx, e2e.Alice, e2e.AlicePassword)
	if err != nil {
		t.Fatal(err)
	}
	leaks.Secret("refresh token", tok.RefreshToken)
	leaks.Secret("access token", tok.AccessToken)
	const password = "the-proxy-password"
	leaks.Secret("proxy password", password)

	enc := exec.CommandContext(ctx, python, "-c", proxyEncrypt, fmt.Sprint(proxyIterations))
	enc.Stdin = strings.NewReader(password + "\n" + tok.AccessToken + "\n" + tok.RefreshToken + "\n")
	out, err := enc.Output()
	if err != nil {
		t.Fatalf("encrypting as email-oauth2-proxy: %v", err)
	}
	vals := strings.Fields(string(out))
	if len(vals) != 3 {
		t.Fatalf("the encryption printed %d values, want 3", len(vals))
	}
	ep := s.Endpoint()
	conf := fmt.Sprintf(`[Email OAuth 2.0 Proxy configuration file]
documentation = This is a sample Email OAuth 2.0 Proxy configuration file. Values
	that span multiple lines are indented, as here.

[IMAP-1993]
server_address = 127.0.0.1
server_port = %d
local_address = 127.0.0.1

[POP-1995]
server_address = 127.0.0.1
server_port = %d
local_address = 127.0.0.1

[SMTP-1587]
server_address = 127.0.0.1
server_port = %d
server_starttls = True
local_address = 127.0.0.1

[%s]
permission_url = %s
token_url = %s
oauth2_scope = openid email mail
redirect_uri = http://localhost
client_id = %s
token_salt = %s
token_iterations = %d
access_token = %s
access_token_expiry = %d
refresh_token = %s
last_activity = %d

[Email OAuth 2.0 Proxy global settings]
delete_account_token_on_password_error = True
`, s.IMAPSPort, s.POP3SPort, s.SubmissionPort, e2e.Alice, ep.AuthURL, ep.TokenURL, e2e.ClientPublic,
		vals[0], proxyIterations, vals[1], tok.Expiry.Unix(), vals[2], time.Now().Unix())
	file := filepath.Join(m.Dir, "emailproxy.config")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}

	wrong := m.Run(ctx, "not-the-password\n", "import", file, "--as", "work", "--ca-file", s.CAFile)
	if wrong.Code == 0 || !strings.Contains(wrong.Stderr, "password does not decrypt") || !strings.Contains(wrong.Stderr, "nothing was imported") {
		t.Errorf("a wrong password: %s", wrong)
	}
	m.nothingWritten(t)

	// At a terminal, mailkey asks for the password and does not echo it.
	imported := m.atTerminal(ctx, python, password, "import", file, "--as", "work", "--ca-file", s.CAFile)
	if !strings.Contains(imported.Stderr, "mailkey: the password of "+e2e.Alice+" at email-oauth2-proxy: ") {
		t.Errorf("mailkey import asked for no password at the terminal:\n%s", imported.Stderr)
	}
	for _, want := range []string{"imported account work from the email-oauth2-proxy configuration",
		"mapped: provider generic", "mapped: imap server imaps://127.0.0.1:", "mapped: smtp server smtp://127.0.0.1:", "next: mailkey test work"} {
		if !strings.Contains(imported.Stderr, want) {
			t.Errorf("mailkey import does not say %q:\n%s", want, imported.Stderr)
		}
	}
	m.Must(ctx, "", "test", "work")

	m.EditRecord(ctx, "work", mailkeytest.Expired)
	after := m.Token(ctx, "work")
	if after == tok.AccessToken {
		t.Fatal("mailkey token printed the expired token again")
	}
	if err := e2e.IMAPLogin(ctx, e2e.Loopback(s.IMAPSPort), e2e.ImplicitTLS, s.TLSConfig(), e2e.Alice, after, e2e.XOAUTH2); err != nil {
		t.Errorf("IMAP login with the refreshed token: %v", err)
	}
}

// ptyAnswer runs a command on a new pseudo-terminal, types $ANSWER and a newline once the
// command asks for a password, and copies what the terminal shows to stdout; it exits with
// the command's status.
const ptyAnswer = `
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
seen, answered = b'', False
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
    if not answered and seen.rstrip().endswith(b':') and b'password' in seen:
        os.write(fd, os.environ['ANSWER'].encode() + b'\n')
        answered = True
sys.stdout.buffer.write(seen)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
`

// atTerminal runs mailkey with args on a pseudo-terminal, answering its password prompt
// with answer, and fails the test unless it exits 0. What the terminal showed is the
// result's Stderr, recorded for the leak check.
func (m *mk) atTerminal(ctx context.Context, python, answer string, args ...string) mailkeytest.Result {
	m.T.Helper()
	cmd := exec.CommandContext(ctx, python, append([]string{"-c", ptyAnswer, mailkeytest.Bin()}, args...)...)
	cmd.Env, cmd.Dir = append(m.Vars, "ANSWER="+answer), m.Dir
	out, err := cmd.Output()
	r := mailkeytest.Result{Stderr: string(out)}
	m.Leaks.Output("the terminal of mailkey "+strings.Join(args, " "), r.Stderr)
	if err != nil {
		m.T.Fatalf("mailkey %s at a terminal: %v\n%s", strings.Join(args, " "), err, m.Leaks.Redact(r.Stderr))
	}
	return r
}

// nothingWritten fails the test if a refused import left a configuration or a record behind.
func (m *mk) nothingWritten(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(m.Config); err == nil {
		t.Errorf("a refused import wrote %s", m.Config)
	}
	if recs, _ := filepath.Glob(filepath.Join(m.State, "tokens", "*")); len(recs) > 0 {
		t.Errorf("a refused import stored tokens: %v", recs)
	}
}

// TestExportImportRoundTrip moves a logged-in account to another configuration and state
// folder with mailkey export and mailkey import, once under a passphrase and once to an age
// key; mailkey test passes there. A wrong passphrase, a corrupt bundle and a file of no known
// format are refused with the reason and write nothing; an existing account is not replaced
// without --force.
func TestExportImportRoundTrip(t *testing.T) {
	_, ctx, m := aliceLoggedIn(t, "work")
	const passphrase = "correct horse battery staple"
	m.Leaks.Secret("bundle passphrase", passphrase)
	bundle := filepath.Join(m.Dir, "work.age")
	exported := m.Must(ctx, passphrase+"\n", "export", "work", "-o", bundle)
	if !strings.Contains(exported.Stderr, "exported work to "+bundle+", encrypted with a passphrase") {
		t.Errorf("mailkey export says:\n%s", exported.Stderr)
	}
	data, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "-----BEGIN AGE ENCRYPTED FILE-----") {
		t.Errorf("the bundle is not an armored age file")
	}
	m.Leaks.Output("the bundle", string(data))

	other := &mk{mailkeytest.New(t, m.Leaks, "")}
	for _, tc := range []struct {
		name, file, stdin, want string
	}{
		{"wrong passphrase", bundle, "not the passphrase\n", "passphrase or identity does not open the bundle"},
		{"corrupt bundle", writeTemp(t, other.Dir, "cut.age", string(data[:len(data)/2])+"\n-----END AGE ENCRYPTED FILE-----\n"), passphrase + "\n", "cannot be read"},
		{"unknown format", writeTemp(t, other.Dir, "notes.txt", "just some notes\n"), "", "not a mutt_oauth2.py token file, an email-oauth2-proxy configuration or a mailkey export"},
	} {
		r := other.Run(ctx, tc.stdin, "import", tc.file)
		if r.Code == 0 || !strings.Contains(r.Stderr, tc.want) || !strings.Contains(r.Stderr, "mailkey: hint: ") {
			t.Errorf("%s: %s", tc.name, r)
		}
		other.nothingWritten(t)
	}

	imported := other.Must(ctx, passphrase+"\n", "import", bundle)
	if !strings.Contains(imported.Stderr, "imported account work from the mailkey export") {
		t.Errorf("mailkey import says:\n%s", imported.Stderr)
	}
	other.Must(ctx, "", "test", "work")
	if got, want := other.StoredRecord(ctx, "work").RefreshToken, m.StoredRecord(ctx, "work").RefreshToken; got != want {
		t.Error("the imported record holds another refresh token")
	}

	again := other.Run(ctx, passphrase+"\n", "import", bundle)
	if again.Code == 0 || !strings.Contains(again.Stderr, "account work already exists") {
		t.Errorf("importing over an existing account: %s", again)
	}

	// To an age key, on standard output, and back with the key's identity file; --force
	// replaces the account.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := writeTemp(t, other.Dir, "key.txt", id.String()+"\n")
	toKey := m.Must(ctx, "", "export", "work", "--recipient", id.Recipient().String())
	keyBundle := writeTemp(t, other.Dir, "work-key.age", toKey.Stdout)
	noKey := other.Run(ctx, "", "import", keyBundle, "--force")
	if noKey.Code == 0 || !strings.Contains(noKey.Stderr, "-i FILE") {
		t.Errorf("a bundle to a key, without the key: %s", noKey)
	}
	other.Must(ctx, "", "import", keyBundle, "-i", idFile, "--force", "--as", "moved")
	other.Must(ctx, "", "import", keyBundle, "-i", idFile, "--force")
	other.Must(ctx, "", "test", "work")
}

// writeTemp writes content to dir/name, mode 0600, and returns the path.
func writeTemp(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
