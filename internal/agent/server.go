package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mailkey/mailkey/internal/flock"
	"github.com/mailkey/mailkey/internal/secperm"
)

// maxConns bounds the connections handled at once; more wait in the
// kernel's listen queue until one ends.
const maxConns = 512

// Handler answers one token request. ctx ends when the request's wait is
// over, when the peer hangs up, or (cause ErrStopping) when the agent
// stops. The Response's V is set by the server.
type Handler func(ctx context.Context, account string, wait time.Duration) *Response

// peer is who is at the other end of a connection.
type peer struct{ uid, pid int }

// Server is a listening agent.
type Server struct {
	handler Handler
	log     *slog.Logger
	path    string
	ln      *net.UnixListener
	unlock  func()
	uid     int
	peer    func(*net.UnixConn) (peer, error) // peerOf; replaced in tests

	ctx    context.Context
	cancel context.CancelCauseFunc
	conns  sync.WaitGroup
	sem    chan struct{}
	once   sync.Once

	// mu orders the start of a connection's handling before Close's wait
	// for them: a connection accepted as Close runs is closed unanswered.
	mu     sync.Mutex
	closed bool
}

// Listen binds the agent socket of the state folder dir (see SocketPath)
// and returns the server; Serve answers on it. Callers that connect
// before Serve wait in the listen queue. It holds DIR/agent.lock as
// long as the server lives, so a second agent for the folder gets a
// *RunningError and a live agent's socket is never taken over; a socket
// left behind by an agent that died is replaced. log may be nil.
func Listen(dir string, log *slog.Logger) (*Server, error) {
	if !peerCheck {
		return nil, ErrUnsupported
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	path, err := SocketPath(dir)
	if err != nil {
		return nil, err
	}
	dir = canonical(dir)
	for _, d := range []string{dir, filepath.Dir(path)} {
		if err := secperm.EnsureDir(d); err != nil {
			return nil, err
		}
	}
	// The lock, not the socket, says whether an agent is alive: a lock
	// dies with its process, and two agents starting at once cannot both
	// take it.
	taken, cancel := context.WithCancel(context.Background())
	cancel() // a lock that is taken is not waited for
	unlock, err := flock.Lock(taken, filepath.Join(dir, lockName))
	if errors.Is(err, context.Canceled) {
		return nil, &RunningError{Socket: path}
	}
	if err != nil {
		return nil, fmt.Errorf("agent lock: %w", err)
	}
	fail := func(err error) (*Server, error) {
		unlock()
		return nil, err
	}
	switch fi, err := os.Lstat(path); {
	case err == nil && fi.Mode().Type() != fs.ModeSocket:
		return fail(&PathError{Path: path, Msg: "exists and is not a socket; move it aside"})
	case err == nil:
		// Left behind by an agent that died: nobody holds the lock.
		if err := os.Remove(path); err != nil {
			return fail(fmt.Errorf("remove stale agent socket: %w", err))
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fail(err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fail(fmt.Errorf("agent socket %s: %w", path, err))
	}
	ln.SetUnlinkOnClose(false) // Close removes it, under the lock
	// The folder is 0700, so nobody else could reach the socket before
	// this chmod; the mode is the second wall, the peer check the third.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		os.Remove(path)
		return fail(err)
	}
	ctx, stop := context.WithCancelCause(context.Background())
	return &Server{
		log: log, path: path, ln: ln, unlock: unlock, uid: os.Getuid(), peer: peerOf,
		ctx: ctx, cancel: stop, sem: make(chan struct{}, maxConns),
	}, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Serve accepts connections until Close and answers each with h in its
// own goroutine. It returns nil after Close. Call it once.
func (s *Server) Serve(h Handler) error {
	s.handler = h
	var delay time.Duration
	for {
		select {
		case s.sem <- struct{}{}:
		case <-s.ctx.Done():
			return nil
		}
		c, err := s.ln.AcceptUnix()
		if err != nil {
			<-s.sem
			if s.ctx.Err() != nil {
				return nil
			}
			// Out of file descriptors and the like: wait and go on.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("agent: accept failed; retrying", "error", err.Error(), "backoff", delay)
			select {
			case <-time.After(delay):
			case <-s.ctx.Done():
				return nil
			}
			continue
		}
		delay = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			<-s.sem
			return nil
		}
		s.conns.Go(func() {
			defer func() { <-s.sem }()
			s.handle(c)
		})
		s.mu.Unlock()
	}
}

// Close stops accepting, ends the waits of requests in progress (their
// callers are told to read the store), waits for their answers, removes
// the socket and releases the lock. Refreshes the handler started are not
// its business: the token manager sees them through.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel(ErrStopping)
		err = s.ln.Close()
		s.conns.Wait()
		if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = rerr
		}
		s.unlock()
	})
	return err
}

// handle answers one connection: peer check, one request, one response.
func (s *Server) handle(c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(requestTimeout))
	p, err := s.peer(c)
	if err != nil {
		s.log.Warn("agent: refused a connection whose user cannot be checked", "error", err.Error())
		return
	}
	if p.uid != s.uid {
		// Nothing is read from or sent to another user.
		s.log.Warn("agent: refused a connection from another user", "peer_uid", p.uid, "peer_pid", p.pid, "agent_uid", s.uid)
		return
	}
	req, rerr := readRequest(c)
	var resp *Response
	switch {
	case rerr != nil:
		s.log.Warn("agent: unreadable request", "peer_pid", p.pid, "error", rerr.Error())
		resp = &Response{Error: &Error{Kind: KindBadRequest, Message: "the agent could not read the request: " + rerr.Error()}}
	case req.V != Version:
		resp = &Response{Error: &Error{Kind: KindUnsupported, Message: fmt.Sprintf("the agent speaks protocol version %d, not %d", Version, req.V)}}
	default:
		resp = s.answer(c, req)
	}
	resp.V = Version
	b, err := json.Marshal(resp)
	if err != nil {
		return
	}
	c.SetWriteDeadline(time.Now().Add(requestTimeout))
	c.Write(append(b, '\n')) // a caller that left has nothing to lose
}

// answer runs the handler for req, its context ending at the request's
// wait, when the peer hangs up, or when the agent stops.
func (s *Server) answer(c *net.UnixConn, req *Request) *Response {
	wait := req.Wait()
	ctx, cancel := context.WithTimeout(s.ctx, wait)
	defer cancel()
	ctx, hangup := context.WithCancelCause(ctx)
	defer hangup(nil)
	c.SetReadDeadline(time.Now().Add(wait + requestTimeout))
	go func() {
		// The peer sends nothing after its request: a read that returns
		// means it hung up (or the answer is written and c closed).
		var b [1]byte
		c.Read(b[:])
		hangup(errors.New("the caller hung up"))
	}()
	resp := s.handler(ctx, req.Account, wait)
	if resp == nil {
		resp = &Response{Error: &Error{Message: "the agent has no answer", Code: 1}}
	}
	if resp.Error != nil && errors.Is(context.Cause(ctx), ErrStopping) {
		resp = &Response{Error: &Error{Kind: KindStopping, Message: ErrStopping.Error()}}
	}
	return resp
}

// readRequest reads one request line of at most maxRequest bytes.
func readRequest(r io.Reader) (*Request, error) {
	line, err := readLine(r, maxRequest)
	if err != nil {
		return nil, err
	}
	// Unknown fields are ignored: the version says what a request means.
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return nil, fmt.Errorf("not a JSON request: %w", err)
	}
	return &req, nil
}

// readLine reads up to and without the first '\n', refusing lines longer
// than limit.
func readLine(r io.Reader, limit int) ([]byte, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, int64(limit)+1), limit+1)
	line, err := br.ReadSlice('\n')
	switch {
	case err == nil:
		return line[:len(line)-1], nil
	case errors.Is(err, bufio.ErrBufferFull) || len(line) > limit:
		return nil, fmt.Errorf("line longer than %d bytes", limit)
	case errors.Is(err, io.EOF):
		return nil, io.ErrUnexpectedEOF
	}
	return nil, err
}
