//go:build unix

package cli

import "syscall"

// detached puts a child in its own session: no controlling terminal, and
// no signal sent to the caller's process group reaches it.
func detached() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true}
}
