package cli

import (
	"context"
	"os"
	"path/filepath"

	"github.com/mailkey/mailkey/internal/service"
)

// asService runs a daemon command, as a Windows service when the service
// control manager started it: the manager hears when it is ready, and its
// stop ends the command's context as Ctrl-C would. A service has no
// console, so its log goes to serve.log in the state folder (the previous
// run's to serve.log.1).
func asService(e *env, run func(e *env, ready func()) error) error {
	if !service.IsWindowsService() {
		return run(e, func() {})
	}
	se := *e
	if dir, err := stateDir(); err == nil && os.MkdirAll(dir, 0o700) == nil {
		name := filepath.Join(dir, "serve.log")
		os.Rename(name, name+".1")
		if f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err == nil {
			defer f.Close()
			se.stderr = f
		}
	}
	return service.RunWindowsService(service.WindowsName, func(ctx context.Context, ready func()) error {
		se.ctx = ctx
		err := run(&se, ready)
		if err != nil {
			report(se.stderr, err)
		}
		return err
	})
}
