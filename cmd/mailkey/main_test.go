package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/mailkey/mailkey/internal/cli"
	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"mailkey": func() { os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
		"approve": func() { os.Exit(approve(os.Args[1:])) },
	})
}

// TestScripts runs the stories in testdata/*.txt: each pins one behaviour of
// the command line (output rules, errors with file:line:field, hints).
//
// Besides the usual commands, a story has:
//
//	provider start|down|log   an OAuth provider on loopback at $PROVIDER (see fakeProvider)
//	approve mailkey login ACCOUNT --paste
//	                          a person who opens the printed URL, approves and pastes the redirect
//	expire ACCOUNT            make the stored access token expired, so that its next use refreshes
//	exits CODE PROGRAM ARGS…  run a program and require that exit status
//	jsonshape HEADING FILE    FILE holds only fields that docs/json.md shows under HEADING
//
// the condition [installed:PROGRAM] (see installed), and $CLOSED, a loopback address that refuses connections for the whole story.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:       "testdata",
		Condition: installed,
		Setup: func(e *testscript.Env) error {
			e.Setenv("MAILKEY_CONFIG", e.WorkDir+"/config.toml")
			e.Setenv("MAILKEY_STATE_DIR", e.WorkDir+"/state")
			e.Setenv("MAILKEY_NO_KEYRING", "1")
			e.Setenv("XDG_CONFIG_HOME", e.WorkDir+"/xdg-config")
			e.Setenv("XDG_STATE_HOME", e.WorkDir+"/xdg-state")
			e.Setenv("HOME", e.WorkDir+"/home")
			// Run's T implements testing.TB (testscript.Env.T says so).
			e.Setenv("CLOSED", e2e.ClosedAddr(e.T().(testing.TB)))
			e.Values[providerKey{}] = &fakeProvider{}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"provider":  providerCmd,
			"expire":    expireCmd,
			"exits":     exitsCmd,
			"jsonshape": jsonShapeCmd,
		},
	})
}

// installed is the condition [installed:PROGRAM]: whether PROGRAM is on $PATH. Under
// MAILKEY_E2E=1, as CI runs, a missing program fails the story instead of skipping it.
func installed(cond string) (bool, error) {
	prog, ok := strings.CutPrefix(cond, "installed:")
	if !ok {
		return false, fmt.Errorf("unknown condition %q", cond)
	}
	if _, err := exec.LookPath(prog); err != nil {
		if os.Getenv("MAILKEY_E2E") == "1" {
			return false, fmt.Errorf("MAILKEY_E2E=1 but %v (bash test/e2e/install-deps.sh installs it)", err)
		}
		return false, nil
	}
	return true, nil
}

// expireCmd makes the stored access token of an account expired, through the store.
func expireCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: expire ACCOUNT")
	}
	ctx := context.Background()
	st, err := store.OpenFile(ts.Getenv("MAILKEY_STATE_DIR"), &store.FileOptions{NoKeyring: true})
	ts.Check(err)
	unlock, err := st.Lock(ctx, args[0])
	ts.Check(err)
	defer unlock()
	rec, err := st.Get(ctx, args[0])
	ts.Check(err)
	mailkeytest.Expired(rec)
	ts.Check(st.Put(ctx, rec))
}

// exitsCmd runs a program, keeping its output for stdout and stderr, and fails unless it
// ends with the exit status given: the status is part of the contract (75, EX_TEMPFAIL,
// tells a mail client to try again later).
func exitsCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROGRAM [ARGS…]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	var ee *exec.ExitError
	switch err := ts.Exec(args[1], args[2:]...); {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// approve runs a command (mailkey login ACCOUNT --paste) as the person at the keyboard
// would answer it: it passes the command's standard error on, opens the first URL printed
// with a state parameter, lets the provider approve it, and pastes the address the browser
// is redirected to into the command's standard input. It returns the command's exit status.
func approve(args []string) int {
	code, err := runApproving(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "approve:", err)
		return 2
	}
	return code
}

func runApproving(args []string) (int, error) {
	if len(args) == 0 {
		return 0, errors.New("usage: approve COMMAND [ARGS…]")
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout = os.Stdout
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		fmt.Fprintln(os.Stderr, sc.Text())
		if u := strings.TrimSpace(sc.Text()); stdin != nil && strings.HasPrefix(u, "http") && strings.Contains(u, "state=") {
			if redirect, err := approveAt(u); err != nil {
				fmt.Fprintln(os.Stderr, "approve:", err)
			} else {
				fmt.Fprintln(stdin, redirect)
			}
			stdin.Close() // nothing more to paste
			stdin = nil
		}
	}
	var ee *exec.ExitError
	if err := cmd.Wait(); errors.As(err, &ee) {
		return ee.ExitCode(), nil
	} else if err != nil {
		return 0, err
	}
	return 0, nil
}

// approveAt opens an authorization URL and returns where the provider redirects the
// browser, without following it (nothing listens there: that is the paste flow).
func approveAt(authURL string) (string, error) {
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || loc == "" {
		return "", fmt.Errorf("the provider did not approve: %s", resp.Status)
	}
	return loc, nil
}
