package cli

import (
	"errors"
	"strings"

	"github.com/mailkey/mailkey/internal/service"
)

// backend is the Windows service of mailkey serve, through the service
// control manager.
func (f *serviceFlags) backend() (serviceBackend, error) {
	s, err := f.spec()
	if err != nil {
		return nil, err
	}
	w, err := s.Windows()
	if err != nil {
		return nil, &Error{Msg: err.Error(), Err: err, Hint: "mailkey service install (mailkey serve, as a Windows service)"}
	}
	return &windowsService{w: w}, nil
}

type windowsService struct{ w *service.WindowsService }

const windowsAdminHint = "run it from an administrator's terminal (Run as administrator)"

func (s *windowsService) install(e *env, dryRun bool) error {
	w := s.w
	if dryRun {
		e.notef("would create the Windows service %s, started at boot and again 5s after a failure:", w.Name)
		e.notef("  %s %s", w.Executable, strings.Join(w.Args, " "))
		for _, kv := range w.Env {
			e.notef("  environment %s", kv)
		}
		return nil
	}
	if err := service.InstallWindows(w); err != nil {
		return &Error{Msg: err.Error(), Err: err, Hint: windowsAdminHint}
	}
	e.notef("installed and started the Windows service %s: mailkey service status", w.Name)
	return nil
}

func (s *windowsService) uninstall(e *env, dryRun bool) error {
	if dryRun {
		e.notef("would stop and delete the Windows service %s", s.w.Name)
		return nil
	}
	if err := service.UninstallWindows(s.w.Name); err != nil {
		if errors.Is(err, service.ErrNotInstalled) {
			return &Error{Msg: err.Error(), Err: err, Hint: "mailkey service status"}
		}
		return &Error{Msg: err.Error(), Err: err, Hint: windowsAdminHint}
	}
	e.notef("removed the Windows service %s", s.w.Name)
	return nil
}

func (s *windowsService) status(e *env) (*serviceStatus, error) {
	st := &serviceStatus{Service: s.w.Name, Manager: "Windows service"}
	ws, err := service.StatusWindows(s.w.Name)
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		st.State = "not installed"
		return st, nil
	case err != nil:
		return nil, &Error{Msg: err.Error(), Err: err, Hint: windowsAdminHint}
	}
	st.Installed, st.State = true, ws.State
	st.Current = ws.Command == service.CommandLine(s.w.Executable, s.w.Args)
	return st, nil
}
