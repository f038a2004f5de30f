//go:build !linux

package e2e

import (
	"errors"
	"os/exec"
	"syscall"
)

const platformSupported = false

var errUnsupported = errors.New("the e2e stack runs on Linux only")

func raiseNoFile() error                  { return errUnsupported }
func lockFile(string) (func(), error)     { return nil, errUnsupported }
func dieWithParent(*exec.Cmd)             {}
func signalPID(int, syscall.Signal) error { return errUnsupported }
func pidAlive(int) bool                   { return false }

func reservePort(int, bool) (int, func(), error) { return 0, nil, errUnsupported }
