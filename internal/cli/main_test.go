package cli

import (
	"os"
	"testing"
)

// TestMain lets the test binary stand in for mailkey where a command starts
// mailkey again: `mailkey token` starts `mailkey background-refresh` from
// os.Executable, which is this binary in tests.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "background-refresh" {
		os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
