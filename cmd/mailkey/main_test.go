package main

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/mailkey/mailkey/internal/cli"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"mailkey": func() { os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the stories in testdata/*.txt: each pins one behaviour of
// the command line (output rules, errors with file:line:field, hints).
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(e *testscript.Env) error {
			e.Setenv("MAILKEY_CONFIG", e.WorkDir+"/config.toml")
			e.Setenv("MAILKEY_STATE_DIR", e.WorkDir+"/state")
			e.Setenv("MAILKEY_NO_KEYRING", "1")
			e.Setenv("XDG_CONFIG_HOME", e.WorkDir+"/xdg-config")
			e.Setenv("XDG_STATE_HOME", e.WorkDir+"/xdg-state")
			e.Setenv("HOME", e.WorkDir+"/home")
			return nil
		},
	})
}
