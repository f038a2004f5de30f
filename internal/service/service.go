// Package service describes mailkey serve (or mailkey agent) as a service of
// the platform's service manager: a systemd unit on Linux (systemd.go), a
// launchd agent on macOS (launchd.go), a Windows service (windows.go, and
// scm_windows.go for the calls to the service control manager).
//
// What a service runs is a Spec: the binary's real path, the command, and
// the configuration file and state folder the service must use, so that it
// finds the same accounts and tokens as the user who installed it. The
// file-based managers get a Plan: the file to write and the commands that
// load, reload and remove it. Nothing here runs those commands; the CLI
// does, or prints them.
package service

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Program is the mailkey command a service runs.
type Program int

const (
	Serve Program = iota // mailkey serve: the proxy, which answers mailkey token too
	Agent                // mailkey agent: the token agent alone
)

// Kind is a service manager.
type Kind string

const (
	Systemd Kind = "systemd"
	Launchd Kind = "launchd"
	Windows Kind = "windows"
)

// KindOf returns the service manager of an operating system (a GOOS value).
func KindOf(goos string) (Kind, error) {
	switch goos {
	case "linux":
		return Systemd, nil
	case "darwin":
		return Launchd, nil
	case "windows":
		return Windows, nil
	}
	return "", &UnsupportedError{What: "a service on " + goos}
}

// ErrNotInstalled: there is no such service.
var ErrNotInstalled = errors.New("not installed")

// UnsupportedError reports a service this platform's manager cannot run.
type UnsupportedError struct{ What string }

func (e *UnsupportedError) Error() string { return "mailkey cannot install " + e.What }

// Spec is what a service runs.
type Spec struct {
	Program Program
	// Executable is the mailkey binary, absolute, with symbolic links
	// resolved: a link such as /usr/local/bin/mailkey may later point
	// elsewhere, and a service should run what was installed.
	Executable string
	Config     string // MAILKEY_CONFIG
	StateDir   string // MAILKEY_STATE_DIR
	Home       string // the user's home folder (launchd's log file)
	// System makes a systemd system unit (in /etc/systemd/system, started
	// at boot) that runs as User, rather than a unit of the user's own
	// manager.
	System bool
	User   string
}

// Name is the mailkey command of p.
func (p Program) Name() string {
	if p == Agent {
		return "agent"
	}
	return "serve"
}

// check refuses what no service file can say safely.
func (s Spec) check() error {
	for _, f := range []struct{ name, v string }{
		{"the mailkey binary", s.Executable}, {"the configuration file", s.Config}, {"the state folder", s.StateDir},
	} {
		if !filepath.IsAbs(f.v) {
			return fmt.Errorf("%s is not an absolute path: %q", f.name, f.v)
		}
		if strings.ContainsAny(f.v, "\x00\r\n") {
			return fmt.Errorf("%s has a line break in its path: %q", f.name, f.v)
		}
	}
	if s.System && s.User == "" {
		return errors.New("a system unit needs the user it runs as")
	}
	return nil
}

// env is the environment every service gets: the configuration and the
// state of the user who installed it, whatever the manager's defaults.
func (s Spec) env() [][2]string {
	return [][2]string{{"MAILKEY_CONFIG", s.Config}, {"MAILKEY_STATE_DIR", s.StateDir}}
}

// Plan is a service that lives in a file: where the file goes, what it
// says, and the commands that put it to work and take it away.
type Plan struct {
	Kind Kind
	// Name is what the manager calls the service (mailkey.service,
	// com.mailkey.serve).
	Name    string
	File    string
	Content []byte
	// Load runs after the file is written for the first time; Reload after
	// it replaced an earlier one (or was written again); Unload before the
	// file is removed, and AfterRemove once it is gone.
	Load, Reload, Unload, AfterRemove []Command
	// Status asks the manager about the service; State reads its output.
	Status Command
}

// A Command is one call of the manager's tool. An Optional one fails when
// there is nothing for it to do (stopping what is not loaded), which is
// not an error.
type Command struct {
	Args     []string
	Optional bool
}

func (c Command) String() string { return Join(c.Args) }

// State is what the manager's answer to Status says of the service:
// "active", "inactive", "running", "not loaded"….
func (p *Plan) State(out string, err error) string {
	switch p.Kind {
	case Launchd:
		if err != nil {
			return "not loaded"
		}
		for _, l := range strings.Split(out, "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(l), " = "); ok && k == "state" {
				return v
			}
		}
		return "loaded"
	}
	// systemctl is-active prints the state and exits non-zero unless active.
	if l, _, _ := strings.Cut(strings.TrimSpace(out), "\n"); l != "" {
		return l
	}
	if err != nil {
		return "unknown"
	}
	return ""
}

// Available reports whether the manager of kind runs here and would take
// commands: systemd booted as init (sd_booted(3)), and for a user unit the
// user's own manager listening in $XDG_RUNTIME_DIR; launchd on macOS.
// Where it does not, mailkey writes the file and prints the commands.
func Available(k Kind, system bool) bool {
	switch k {
	case Systemd:
		if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
			return false
		}
		if _, err := exec.LookPath("systemctl"); err != nil {
			return false
		}
		if system {
			return true
		}
		rt := os.Getenv("XDG_RUNTIME_DIR")
		if !filepath.IsAbs(rt) {
			return false
		}
		_, err := os.Stat(filepath.Join(rt, "systemd", "private"))
		return err == nil
	case Launchd:
		_, err := exec.LookPath("launchctl")
		return runtime.GOOS == "darwin" && err == nil
	}
	return false
}

// Join quotes a command for a POSIX shell, for the steps printed to a user.
func Join(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && !strings.ContainsFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:@%+,", r))
		}) {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
