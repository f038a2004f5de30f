//go:build !windows

package cli

import (
	"os"
	"syscall"
)

// reloadSignal makes mailkey serve re-read its configuration.
var reloadSignal os.Signal = syscall.SIGHUP
