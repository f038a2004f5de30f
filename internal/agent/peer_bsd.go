//go:build darwin || freebsd

package agent

import (
	"net"

	"golang.org/x/sys/unix"
)

const peerCheck = true

// peerOf returns the user at the other end of c, as the kernel recorded it
// when the connection was made (LOCAL_PEERCRED, which getpeereid(3) reads).
func peerOf(c *net.UnixConn) (peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return peer{}, err
	}
	var cred *unix.Xucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	}); err != nil {
		return peer{}, err
	}
	if serr != nil {
		return peer{}, serr
	}
	return peer{uid: int(cred.Uid), pid: -1}, nil
}
