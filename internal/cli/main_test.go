package cli

import (
	"os"
	"os/exec"
	"sync"
	"testing"
)

// TestMain lets the test binary stand in for mailkey where a command starts
// mailkey again: `mailkey token` starts `mailkey background-refresh` from
// os.Executable, which is this binary in tests.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "background-refresh" {
		os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	releaseRefresher = func(cmd *exec.Cmd) {
		refreshers.Add(1)
		go func() {
			defer refreshers.Done()
			cmd.Wait()
		}()
	}
	os.Exit(m.Run())
}

// refreshers are the early refreshers mailkey token started and left to
// run; a test waits for them (waitRefreshers) before its folders are
// removed, or the refresher would write into a folder being deleted.
var refreshers sync.WaitGroup

func waitRefreshers() { refreshers.Wait() }
