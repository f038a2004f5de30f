//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// wantNoFile is the open-file limit the daemons get: enough for load tests that open thousands
// of sessions (each costs Dovecot several descriptors).
const wantNoFile = 65536

const platformSupported = true

// raiseNoFile raises RLIMIT_NOFILE of this process, and so of the daemons it starts. Calling
// Setrlimit also stops os/exec from restoring the original soft limit in children.
func raiseNoFile() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Max < wantNoFile {
		// root may raise the hard limit; anyone else keeps the hard limit it has
		raised := syscall.Rlimit{Cur: wantNoFile, Max: wantNoFile}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			return nil
		}
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("setrlimit: %w", err)
	}
	return nil
}

// lockFile takes an exclusive advisory lock on path (created if needed) and returns its release.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// dieWithParent makes a child process get SIGTERM when the test binary dies, so that a
// crashed or timed-out test does not leave daemons behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// signalPID sends sig to pid.
func signalPID(pid int, sig syscall.Signal) error {
	return syscall.Kill(pid, sig)
}

// pidAlive reports whether pid still runs (a zombie does not count: the daemons started with
// "postfix start" are not our children, so nobody here reaps them).
func pidAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// reservePort binds a TCP socket to 127.0.0.1:port (port 0: one the kernel picks) and, when
// v6 is set, one to [::1] on the same port, both with SO_REUSEADDR and neither listening, and
// returns the port and the function that closes them. Until then nobody else gets the port:
// neither a listen on port 0 nor an outgoing connection picks it, and a bind without
// SO_REUSEADDR fails. A daemon binding it with SO_REUSEADDR, as Dovecot, Postfix, Node.js and
// Go do, still can, as often as it restarts. While nothing listens, connections are refused.
func reservePort(port int, v6 bool) (int, func(), error) {
	var fds []int
	release := func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}
	bind := func(family int, sa syscall.Sockaddr) error {
		fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		fds = append(fds, fd)
		if family == syscall.AF_INET6 {
			if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 1); err != nil {
				return err
			}
		}
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
			return err
		}
		return syscall.Bind(fd, sa)
	}
	if err := bind(syscall.AF_INET, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		release()
		return 0, nil, fmt.Errorf("reserve 127.0.0.1:%d: %w", port, err)
	}
	sa, err := syscall.Getsockname(fds[0])
	if err != nil {
		release()
		return 0, nil, err
	}
	port = sa.(*syscall.SockaddrInet4).Port
	if v6 {
		if err := bind(syscall.AF_INET6, &syscall.SockaddrInet6{Port: port, Addr: [16]byte{15: 1}}); err != nil {
			release()
			return 0, nil, fmt.Errorf("reserve [::1]:%d: %w", port, err)
		}
	}
	return port, release, nil
}
