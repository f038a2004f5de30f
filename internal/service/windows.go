package service

import (
	"errors"
	"strings"
	"time"
)

// WindowsName is the Windows service's name; only mailkey serve runs as
// one (the token agent needs Unix sockets).
const WindowsName = "mailkey"

// WindowsService is s as a Windows service: what scm_windows.go asks the
// service control manager to create.
type WindowsService struct {
	Name, DisplayName, Description string
	Executable                     string
	Args                           []string
	// Env is the service's own environment (the REG_MULTI_SZ value
	// "Environment" of its registry key).
	Env []string
	// RestartDelay: the manager starts the service again this long after
	// it fails, every time.
	RestartDelay time.Duration
}

// Windows is s as a Windows service, started at boot.
func (s Spec) Windows() (*WindowsService, error) {
	if s.Program == Agent {
		return nil, &UnsupportedError{What: "the token agent as a Windows service: it needs Unix sockets with peer credentials"}
	}
	if s.System {
		return nil, errors.New("--system is for systemd: a Windows service is always the system's")
	}
	for _, v := range []string{s.Executable, s.Config, s.StateDir} {
		if v == "" || strings.ContainsAny(v, "\x00\r\n") {
			return nil, errors.New("a path of the service is empty or has a line break")
		}
	}
	var env []string
	for _, kv := range s.env() {
		env = append(env, kv[0]+"="+kv[1])
	}
	return &WindowsService{
		Name:         WindowsName,
		DisplayName:  "mailkey",
		Description:  "mailkey local IMAP/POP3/SMTP OAuth proxy (mailkey serve)",
		Executable:   s.Executable,
		Args:         []string{s.Program.Name()},
		Env:          env,
		RestartDelay: 5 * time.Second,
	}, nil
}
