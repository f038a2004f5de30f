//go:build unix

package readahead

import "syscall"

// nonBlockingRead reads from the (non-blocking) socket fd; it returns 0
// when nothing is waiting or on any error, which the next blocking read
// reports again.
func nonBlockingRead(fd uintptr, b []byte) int {
	for {
		n, err := syscall.Read(int(fd), b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n < 0 {
			return 0
		}
		return n
	}
}
