//go:build darwin || freebsd

package agent

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerOf returns the user at the other end of c, as the kernel recorded it
// when the connection was made (LOCAL_PEERCRED, which getpeereid(3) reads).
func peerOf(c *net.UnixConn) (peer, error) {
	var cred *unix.Xucred
	err := sockopt(c, func(fd int) (err error) {
		cred, err = unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
		return err
	})
	if err != nil {
		return peer{}, err
	}
	return peer{uid: int(cred.Uid), pid: -1}, nil
}
