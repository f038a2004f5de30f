package mailkeytest

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"

	"github.com/mailkey/mailkey/test/e2e"
)

// LoginAs logs account name in as user with mailkey login --paste: the scripted browser opens
// the URL mailkey prints, signs in and consents, and the redirect it ends at is pasted back.
// It returns how mailkey ended; a browser that cannot finish fails the test.
func (e *Env) LoginAs(ctx context.Context, s *e2e.Stack, name, user, password string) Result {
	e.T.Helper()
	args := []string{"login", name, "--paste"}
	cmd := e.Command(ctx, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		e.T.Fatal(err)
	}
	var out, errb bytes.Buffer
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = &out, io.MultiWriter(&errb, pw)
	if err := cmd.Start(); err != nil {
		e.T.Fatal(err)
	}
	// The URL is alone on its line, indented; the prompt "URL: " follows without a newline.
	var authURL string
	sc := bufio.NewScanner(pr)
	sc.Buffer(nil, 1<<20)
	for authURL == "" && sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, s.Issuer+"/") {
			authURL = l
		}
	}
	go io.Copy(io.Discard, pr) // the rest of stderr, until mailkey ends
	if authURL != "" {
		redirect, err := s.BrowserLogin(ctx, authURL, user, password)
		if err != nil {
			cmd.Process.Kill()
			e.T.Fatalf("browser: %v", err)
		}
		e.Leaks.Secret("authorization code", redirect.Query().Get("code"))
		io.WriteString(stdin, redirect.String()+"\n")
	}
	stdin.Close()
	cmd.Wait()
	pw.Close()
	r := Result{Stdout: out.String(), Stderr: errb.String(), Code: cmd.ProcessState.ExitCode()}
	e.Record(args, r)
	if authURL == "" {
		e.T.Fatalf("mailkey %s printed no authorization URL: %s", strings.Join(args, " "), r)
	}
	return r
}
