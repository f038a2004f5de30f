//go:build !windows

package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/mailkey/mailkey/internal/atomicfile"
	"github.com/mailkey/mailkey/internal/service"
)

// backend is the service in a file: a systemd unit on Linux, a launchd
// agent on macOS.
func (f *serviceFlags) backend() (serviceBackend, error) {
	kind, err := service.KindOf(runtime.GOOS)
	if err != nil {
		return nil, &Error{Msg: err.Error(), Err: err, Hint: "start mailkey serve from the system's own start-up scripts (docs/service.md)"}
	}
	s, err := f.spec()
	if err != nil {
		return nil, err
	}
	var p *service.Plan
	switch kind {
	case service.Systemd:
		dir := service.SystemUnitDir
		if !s.System {
			dir = service.UserUnitDir(s.Home)
		}
		p, err = service.SystemdPlan(s, dir)
	case service.Launchd:
		p, err = service.LaunchdPlan(s, os.Getuid())
	}
	var ue *service.UnsupportedError
	switch {
	case errors.As(err, &ue):
		return nil, &Error{Msg: err.Error(), Err: err, Hint: "mailkey service install" + strings.Replace(f.flags(), " --system", "", 1)}
	case err != nil:
		return nil, &Error{Msg: "cannot describe the service: " + err.Error(), Err: err, Hint: "install mailkey in a folder whose path has no line break, and check: mailkey config path"}
	}
	return &fileService{plan: p, flags: f, available: service.Available(kind, s.System)}, nil
}

type fileService struct {
	plan      *service.Plan
	flags     *serviceFlags
	available bool // the manager runs here and takes commands
}

// manager names the service's manager for people.
func (s *fileService) manager() string {
	switch {
	case s.plan.Kind == service.Launchd:
		return "launchd agent"
	case s.flags.System:
		return "systemd system unit"
	}
	return "systemd user unit"
}

func (s *fileService) install(e *env, dryRun bool) error {
	p := s.plan
	old, err := os.ReadFile(p.File)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errorf("check the folder's permissions, or use --dry-run and write the file yourself", "cannot read %s: %v", p.File, err)
	}
	steps := p.Load
	if exists {
		steps = p.Reload
	}
	if dryRun {
		e.stdout.Write(p.Content)
		e.notef("would write %s (%s %s)", p.File, s.manager(), p.Name)
		for _, c := range steps {
			e.notef("would run: %s", c)
		}
		return nil
	}
	if exists && bytes.Equal(old, p.Content) {
		e.notef("already installed and current: %s", p.File)
	} else {
		if err := os.MkdirAll(filepath.Dir(p.File), 0o755); err != nil {
			return s.writeError(err)
		}
		// Not secret (no token or passphrase is in it), and the manager reads it.
		if err := atomicfile.WriteFile(p.File, p.Content, 0o644); err != nil {
			return s.writeError(err)
		}
		e.notef("wrote %s", p.File)
	}
	if !s.available {
		e.notef("%s does not take commands here; once it runs, start the service with:", s.managerName())
		for _, c := range steps {
			e.notef("  %s", c)
		}
		return nil
	}
	if err := s.run(e, steps); err != nil {
		return err
	}
	e.notef("%s is installed and started: mailkey service status%s", p.Name, s.flags.flags())
	return nil
}

func (s *fileService) uninstall(e *env, dryRun bool) error {
	p := s.plan
	if _, err := os.Stat(p.File); err != nil {
		return &Error{Msg: fmt.Sprintf("%s is not installed: there is no %s", p.Name, p.File), Err: service.ErrNotInstalled,
			Hint: "mailkey service status" + s.flags.flags()}
	}
	if dryRun {
		for _, c := range p.Unload {
			e.notef("would run: %s", c)
		}
		e.notef("would remove %s", p.File)
		for _, c := range p.AfterRemove {
			e.notef("would run: %s", c)
		}
		return nil
	}
	if s.available {
		if err := s.run(e, p.Unload); err != nil {
			return err
		}
	}
	if err := os.Remove(p.File); err != nil {
		return s.writeError(err)
	}
	e.notef("removed %s", p.File)
	if !s.available {
		e.notef("%s does not take commands here; where it runs, also run:", s.managerName())
		for _, c := range append(append([]service.Command{}, p.Unload...), p.AfterRemove...) {
			e.notef("  %s", c)
		}
		return nil
	}
	return s.run(e, p.AfterRemove)
}

func (s *fileService) status(e *env) (*serviceStatus, error) {
	p := s.plan
	st := &serviceStatus{Service: p.Name, Manager: s.manager(), File: p.File}
	cur, err := os.ReadFile(p.File)
	st.Installed = err == nil
	st.Current = st.Installed && bytes.Equal(cur, p.Content)
	if !s.available {
		st.State = "unknown: " + s.managerName() + " does not take commands here"
		return st, nil
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(e.ctx, p.Status.Args[0], p.Status.Args[1:]...)
	cmd.Stdout = &out
	err = cmd.Run()
	st.State = p.State(out.String(), err)
	return st, nil
}

// managerName is the manager's own name, for "systemd does not run here".
func (s *fileService) managerName() string {
	if s.plan.Kind == service.Launchd {
		return "launchd"
	}
	if s.flags.System {
		return "systemd"
	}
	return "your systemd user manager"
}

// run runs the manager's commands in order, their output to stderr. An
// optional command may fail (nothing was loaded); any other failure stops
// and names the commands left to run by hand.
func (s *fileService) run(e *env, steps []service.Command) error {
	for i, c := range steps {
		cmd := exec.CommandContext(e.ctx, c.Args[0], c.Args[1:]...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if err == nil || c.Optional {
			e.notef("ran: %s", c)
			continue
		}
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if l != "" {
				e.notef("%s: %s", c.Args[0], l)
			}
		}
		var left []string
		for _, l := range steps[i:] {
			left = append(left, l.String())
		}
		return &Error{Msg: fmt.Sprintf("%s failed: %v", c, err), Err: err, Hint: "fix what it says, then run: " + strings.Join(left, " && ")}
	}
	return nil
}

func (s *fileService) writeError(err error) error {
	hint := "check the folder's permissions"
	if s.flags.System {
		hint = "a system unit needs root: sudo mailkey service install --system" + strings.Replace(s.flags.flags(), " --system", "", 1)
	}
	return &Error{Msg: err.Error(), Err: err, Hint: hint}
}
