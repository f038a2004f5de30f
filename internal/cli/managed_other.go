//go:build !windows

package cli

// asService runs a daemon command. Here systemd hears of it through
// $NOTIFY_SOCKET (notify.go), so run's ready has nothing more to do.
func asService(e *env, run func(e *env, ready func()) error) error {
	return run(e, func() {})
}
