package agent

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerOf returns the user and process at the other end of c, as the kernel
// recorded them when the connection was made (SO_PEERCRED).
func peerOf(c *net.UnixConn) (peer, error) {
	var cred *unix.Ucred
	err := sockopt(c, func(fd int) (err error) {
		cred, err = unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
		return err
	})
	if err != nil {
		return peer{}, err
	}
	return peer{uid: int(cred.Uid), pid: int(cred.Pid)}, nil
}
