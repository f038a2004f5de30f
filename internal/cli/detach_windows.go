//go:build windows

package cli

import "syscall"

// detachedProcess is DETACHED_PROCESS: the child has no console, so closing
// the caller's console does not end it.
const detachedProcess = 0x00000008

// detached starts a child in its own process group, without the caller's
// console: Ctrl-C and Ctrl-Break sent to the caller do not reach it.
func detached() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP | detachedProcess}
}
