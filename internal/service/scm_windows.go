package service

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

// resetPeriod: the failure count the restart actions go by is forgotten
// after a day without failures.
const resetPeriod = 24 * 60 * 60

// InstallWindows creates the service w (or updates the one of that name),
// sets its environment and restart-on-failure actions, and starts it. It
// needs an elevated (administrator) process.
func InstallWindows(w *WindowsService) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connect to the service control manager: %w", err)
	}
	defer m.Disconnect()
	conf := mgr.Config{
		DisplayName: w.DisplayName,
		Description: w.Description,
		StartType:   mgr.StartAutomatic,
	}
	s, err := m.OpenService(w.Name)
	if err == nil {
		cur, cerr := s.Config()
		if cerr != nil {
			s.Close()
			return fmt.Errorf("read service %s: %w", w.Name, cerr)
		}
		cur.DisplayName, cur.Description, cur.StartType = conf.DisplayName, conf.Description, conf.StartType
		cur.BinaryPathName = CommandLine(w.Executable, w.Args)
		err = s.UpdateConfig(cur)
	} else {
		s, err = m.CreateService(w.Name, w.Executable, conf, w.Args...)
	}
	if err != nil {
		return fmt.Errorf("create service %s: %w", w.Name, err)
	}
	defer s.Close()
	restart := mgr.RecoveryAction{Type: mgr.ServiceRestart, Delay: w.RestartDelay}
	if err := s.SetRecoveryActions([]mgr.RecoveryAction{restart, restart, restart}, resetPeriod); err != nil {
		return fmt.Errorf("set the restart of service %s: %w", w.Name, err)
	}
	// A non-zero exit code is a failure too, not only a crash.
	if err := s.SetRecoveryActionsOnNonCrashFailures(true); err != nil {
		return fmt.Errorf("set the restart of service %s: %w", w.Name, err)
	}
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, `SYSTEM\CurrentControlSet\Services\`+w.Name, registry.SET_VALUE)
	if err != nil {
		return fmt.Errorf("open the registry key of service %s: %w", w.Name, err)
	}
	defer k.Close()
	if err := k.SetStringsValue("Environment", w.Env); err != nil {
		return fmt.Errorf("set the environment of service %s: %w", w.Name, err)
	}
	if err := stop(s); err != nil {
		return fmt.Errorf("stop service %s to restart it: %w", w.Name, err)
	}
	if err := s.Start(); err != nil {
		return fmt.Errorf("start service %s: %w", w.Name, err)
	}
	return nil
}

// UninstallWindows stops the service name and deletes it; the manager
// removes it once it has stopped.
func UninstallWindows(name string) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connect to the service control manager: %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if err != nil {
		return fmt.Errorf("service %s: %w", name, ErrNotInstalled)
	}
	defer s.Close()
	if err := stop(s); err != nil {
		return fmt.Errorf("stop service %s: %w", name, err)
	}
	if err := s.Delete(); err != nil {
		return fmt.Errorf("delete service %s: %w", name, err)
	}
	return nil
}

// stop stops s if it runs, and waits until it has: mailkey serve may see
// a token refresh through first (stopTimeout).
func stop(s *mgr.Service) error {
	st, err := s.Query()
	if err != nil || st.State == svc.Stopped {
		return err
	}
	if st.State != svc.StopPending {
		if st, err = s.Control(svc.Stop); err != nil {
			return err
		}
	}
	for deadline := time.Now().Add(stopTimeout); st.State != svc.Stopped; {
		if time.Now().After(deadline) {
			return fmt.Errorf("still %s after %v", stateWords[st.State], stopTimeout)
		}
		time.Sleep(stopPoll)
		if st, err = s.Query(); err != nil {
			return err
		}
	}
	return nil
}

// stopTimeout is how long a stop may take: the sessions' shutdown timeout
// and the wait for a token refresh already sent (as TimeoutStopSec= of
// the systemd unit); stopPoll is how often the state is asked meanwhile.
const (
	stopTimeout = 200 * time.Second
	stopPoll    = 250 * time.Millisecond
)

// WindowsStatus is what the manager says of a service.
type WindowsStatus struct {
	State   string // running, stopped, …
	Command string // the command line it runs
}

// StatusWindows asks the manager about the service name; ErrNotInstalled
// when there is none.
func StatusWindows(name string) (*WindowsStatus, error) {
	m, err := mgr.Connect()
	if err != nil {
		return nil, fmt.Errorf("connect to the service control manager: %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if err != nil {
		return nil, ErrNotInstalled
	}
	defer s.Close()
	st, err := s.Query()
	if err != nil {
		return nil, fmt.Errorf("query service %s: %w", name, err)
	}
	conf, err := s.Config()
	if err != nil {
		return nil, fmt.Errorf("read service %s: %w", name, err)
	}
	return &WindowsStatus{State: stateWords[st.State], Command: conf.BinaryPathName}, nil
}

var stateWords = map[svc.State]string{
	svc.Stopped: "stopped", svc.StartPending: "starting", svc.StopPending: "stopping", svc.Running: "running",
	svc.ContinuePending: "resuming", svc.PausePending: "pausing", svc.Paused: "paused",
}

// CommandLine is how CreateService writes a binary path with arguments.
func CommandLine(exe string, args []string) string {
	s := windows.EscapeArg(exe)
	for _, a := range args {
		s += " " + windows.EscapeArg(a)
	}
	return s
}

// IsWindowsService reports whether the service control manager started
// this process.
func IsWindowsService() bool {
	ok, err := svc.IsWindowsService()
	return err == nil && ok
}

// RunWindowsService runs run as the service name until it returns, telling
// the manager: starting, then running once run calls ready, and stopping
// once a stop or a shutdown of Windows ends run's context. run's error
// becomes the service's exit code 1.
func RunWindowsService(name string, run func(ctx context.Context, ready func()) error) error {
	h := &handler{run: run}
	if err := svc.Run(name, h); err != nil {
		return err
	}
	return h.err
}

type handler struct {
	run func(ctx context.Context, ready func()) error
	err error
}

func (h *handler) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	const accepts = svc.AcceptStop | svc.AcceptShutdown
	status <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() { done <- h.run(ctx, func() { once.Do(func() { close(ready) }) }) }()
	for {
		select {
		case <-ready:
			status <- svc.Status{State: svc.Running, Accepts: accepts}
			ready = nil
		case h.err = <-done:
			if h.err != nil {
				return true, 1
			}
			return false, 0
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending}
				cancel()
			}
		}
	}
}
