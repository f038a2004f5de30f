package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Relay buffers. An idle session holds only the small buffer per
// direction (thousands of IMAP IDLE sessions must stay cheap); a read that
// fills it switches that direction to a pooled large buffer until reads
// come back short again. The upstream side is TLS, so splice(2) and
// sendfile(2) cannot apply and a user-space copy is the fast path.
const (
	smallRelayBuf = 2 << 10
	largeRelayBuf = 32 << 10
	// halfCloseLinger bounds how long the other direction may stay silent
	// once one side has finished sending.
	halfCloseLinger = 60 * time.Second
)

// aLongTimeAgo is a read deadline that has passed: a read with it returns
// only what is already buffered, without waiting on the socket.
var aLongTimeAgo = time.Unix(1, 0)

// drainBuffered appends to buf[:nr] what src can hand over without
// waiting. A TLS connection returns one record per Read even when it has
// read several from the socket, and servers such as Dovecot send 2 KiB
// records: writing each on its own costs one system call per 2 KiB and
// about a tenth of the throughput. Plain connections are left alone.
func drainBuffered(src net.Conn, buf []byte, nr int) (int, error) {
	tc, ok := src.(*tls.Conn)
	if !ok || nr == len(buf) {
		return nr, nil
	}
	tc.SetReadDeadline(aLongTimeAgo)
	defer tc.SetReadDeadline(time.Time{})
	for nr < len(buf) {
		n, err := tc.Read(buf[nr:])
		nr += n
		if err != nil {
			// A timeout only means nothing more is buffered; a TLS
			// read timeout leaves the connection usable.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nr, nil
			}
			return nr, err
		}
		if n == 0 {
			break
		}
	}
	return nr, nil
}

var largeBufs = sync.Pool{New: func() any { b := make([]byte, largeRelayBuf); return &b }}

var errIdle = errors.New("idle timeout")

// setNoDelay turns Nagle's algorithm off on c's TCP socket, under TLS if
// need be: without it, one-command-per-round-trip clients wait for delayed
// ACKs.
func setNoDelay(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if nd, ok := c.(interface{ SetNoDelay(bool) error }); ok {
		nd.SetNoDelay(true)
	}
}

// relay is the state two copying directions share.
type relay struct {
	idle       time.Duration
	last       atomic.Int64 // unix nanoseconds of the last byte read either way
	halfClosed atomic.Bool
	timedOut   atomic.Bool
	closeBoth  func()

	mu    sync.Mutex
	timer *time.Timer
	done  bool
}

func (r *relay) touch() { r.last.Store(time.Now().UnixNano()) }

// watch runs from the timer: it closes both sides once nothing has moved
// for the idle timeout (or the linger, after a half-close), else re-arms.
func (r *relay) watch() {
	limit := r.idle
	if r.halfClosed.Load() {
		limit = min(limit, halfCloseLinger)
	}
	since := time.Since(time.Unix(0, r.last.Load()))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return
	}
	if since >= limit {
		r.timedOut.Store(true)
		r.done = true
		r.closeBoth()
		return
	}
	r.timer.Reset(limit - since)
}

func (r *relay) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
	r.timer.Stop()
}

// splice relays client<->upstream for session s, after writing the bytes
// each side had already sent.
func splice(s *Session, client net.Conn, fromClient []byte, up net.Conn, fromUp []byte) error {
	setNoDelay(client)
	setNoDelay(up)
	client.SetDeadline(time.Time{})
	up.SetDeadline(time.Time{})

	r := &relay{idle: s.srv.limits.IdleTimeout, closeBoth: s.closeConns}
	r.touch()
	r.mu.Lock()
	r.timer = time.AfterFunc(r.idle, r.watch)
	r.mu.Unlock()
	defer r.stop()

	m := s.srv.metrics
	downErr := make(chan error, 1)
	go func() {
		err := r.copy(client, up, fromUp, &s.toDown, &m.BytesClient)
		r.finished(err, client)
		downErr <- err
	}()
	errUp := r.copy(up, client, fromClient, &s.toUp, &m.BytesUpstream)
	r.finished(errUp, up)
	errDown := <-downErr
	s.closeConns()
	if r.timedOut.Load() {
		return errIdle
	}
	for _, err := range []error{errUp, errDown} {
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
	}
	return nil
}

// finished handles the end of one direction whose destination is dst: a
// clean end half-closes dst and lets the other direction drain; an error
// ends both.
func (r *relay) finished(err error, dst net.Conn) {
	if err != nil {
		r.closeBoth()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		r.halfClosed.Store(true)
		r.mu.Lock()
		if !r.done {
			r.timer.Reset(0) // re-arm with the linger
		}
		r.mu.Unlock()
		return
	}
	r.closeBoth()
}

// copy relays src to dst until src ends; a clean end (EOF) returns nil.
func (r *relay) copy(dst, src net.Conn, pending []byte, n *int64, total *atomic.Int64) error {
	if len(pending) > 0 {
		if _, err := dst.Write(pending); err != nil {
			return err
		}
		*n += int64(len(pending))
		total.Add(int64(len(pending)))
	}
	small := make([]byte, smallRelayBuf)
	buf := small
	var large *[]byte
	defer func() {
		if large != nil {
			largeBufs.Put(large)
		}
	}()
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 && rerr == nil {
			nr, rerr = drainBuffered(src, buf, nr)
		}
		if nr > 0 {
			r.touch()
			if _, err := dst.Write(buf[:nr]); err != nil {
				return err
			}
			*n += int64(nr)
			total.Add(int64(nr))
		}
		if rerr != nil {
			if rerr == io.EOF {
				return nil
			}
			return rerr
		}
		switch {
		case large == nil && nr == len(buf):
			large = largeBufs.Get().(*[]byte)
			buf = *large
		case large != nil && nr < smallRelayBuf:
			largeBufs.Put(large)
			large, buf = nil, small
		}
	}
}
