//go:build linux || darwin || freebsd

package agent

import "net"

const peerCheck = true

// sockopt runs get on c's descriptor, for reading what the kernel recorded
// about the connection's peer.
func sockopt(c *net.UnixConn, get func(fd int) error) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var gerr error
	if err := raw.Control(func(fd uintptr) { gerr = get(int(fd)) }); err != nil {
		return err
	}
	return gerr
}
