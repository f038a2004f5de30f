package agent

import (
	"net"

	"golang.org/x/sys/unix"
)

const peerCheck = true

// peerOf returns the user and process at the other end of c, as the kernel
// recorded them when the connection was made (SO_PEERCRED).
func peerOf(c *net.UnixConn) (peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return peer{}, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return peer{}, err
	}
	if serr != nil {
		return peer{}, serr
	}
	return peer{uid: int(cred.Uid), pid: int(cred.Pid)}, nil
}
