// Package readahead lets crypto/tls drain a burst of records from a socket
// in few system calls: mailkey serve relays large IMAP FETCH answers and
// POP3 RETRs through it.
package readahead

import (
	"net"
	"sync"
	"syscall"
)

// readAheadSize is how much one read from an upstream socket may take in a
// burst. crypto/tls reads only as much as its record buffer has room for
// (about 8 KiB here), so a large FETCH cost one read(2) per few records.
const readAheadSize = 64 << 10

var readAheadBufs = sync.Pool{New: func() any { b := make([]byte, readAheadSize); return &b }}

// readAheadConn lets crypto/tls drain a burst of records in few system
// calls. A Read first waits on the socket as usual, into the caller's
// buffer, so an idle session holds no extra memory; when that read filled
// the buffer (more is likely waiting), one non-blocking read pulls in what
// the socket already has, into a pooled buffer that is handed back as soon
// as it is drained.
type readAheadConn struct {
	net.Conn
	rc   syscall.RawConn
	buf  *[]byte
	r, w int
}

// Wrap wraps a TCP connection; other connections are returned as they
// are. Put it under the tls.Client of a connection that is to be relayed.
func Wrap(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return &readAheadConn{Conn: c, rc: rc}
}

func (c *readAheadConn) Read(p []byte) (int, error) {
	if c.r < c.w {
		n := copy(p, (*c.buf)[c.r:c.w])
		c.r += n
		if c.r == c.w {
			c.release()
		}
		return n, nil
	}
	n, err := c.Conn.Read(p)
	if err == nil && n == len(p) {
		c.fill()
	}
	return n, err
}

// fill reads what the socket holds right now without waiting for more.
func (c *readAheadConn) fill() {
	c.buf = readAheadBufs.Get().(*[]byte)
	var n int
	rerr := c.rc.Read(func(fd uintptr) bool {
		n = nonBlockingRead(fd, *c.buf)
		return true // never wait: an empty socket just means nothing to add
	})
	if rerr != nil || n <= 0 {
		c.release()
		return
	}
	c.r, c.w = 0, n
}

func (c *readAheadConn) release() {
	if c.buf != nil {
		readAheadBufs.Put(c.buf)
	}
	c.buf, c.r, c.w = nil, 0, 0
}

// SetNoDelay reaches the TCP socket under the wrapper.
func (c *readAheadConn) SetNoDelay(on bool) error {
	if nd, ok := c.Conn.(interface{ SetNoDelay(bool) error }); ok {
		return nd.SetNoDelay(on)
	}
	return nil
}
