//go:build windows

package cli

import "os"

// reloadSignal is nil: Windows has no SIGHUP, and mailkey serve there is
// restarted to take a new configuration.
var reloadSignal os.Signal
