package cli

import (
	"context"

	"github.com/mailkey/mailkey/internal/service"
)

// asService runs a daemon command, as a Windows service when the service
// control manager started it: the manager hears when it is ready, and its
// stop ends the command's context as Ctrl-C would.
func asService(e *env, run func(e *env, ready func()) error) error {
	if !service.IsWindowsService() {
		return run(e, func() {})
	}
	return service.RunWindowsService(service.WindowsName, func(ctx context.Context, ready func()) error {
		se := *e
		se.ctx = ctx
		return run(&se, ready)
	})
}
