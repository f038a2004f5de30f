package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"
)

// NoAnswerError says the agent took the request and did not answer in
// time; the caller should not read the store then, since the agent may be
// refreshing.
type NoAnswerError struct{ After time.Duration }

func (e *NoAnswerError) Error() string {
	return fmt.Sprintf("the mailkey agent did not answer within %s", e.After)
}

// Absent reports whether no agent can answer for the state folder dir
// because nothing is at its socket path, so that Ask would fail with
// ErrNoAgent: a caller checks it first and spares the dial and the wait
// when no agent runs, as on most calls of mailkey token. A false answer
// promises nothing: the socket may be left behind by a dead agent.
func Absent(dir string) bool {
	if !peerCheck {
		return true
	}
	path, err := SocketPath(dir)
	if err != nil {
		return true
	}
	_, err = os.Lstat(path)
	return errors.Is(err, fs.ErrNotExist)
}

// Ask sends req (V is set here) to the agent of the state folder dir and
// returns its answer, which may be an Error to report. Errors wrapping
// ErrNoAgent mean that no agent of this user answers, or that it told the
// caller to read the store itself: do that. A *NoAnswerError means the
// agent took the request and went silent. When ctx ends, Ask returns its
// error at once.
func Ask(ctx context.Context, dir string, req Request) (*Response, error) {
	if !peerCheck {
		return nil, fmt.Errorf("%w: %w", ErrNoAgent, ErrUnsupported)
	}
	path, err := SocketPath(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoAgent, err)
	}
	d := net.Dialer{Timeout: dialTimeout}
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", ErrNoAgent, err) // absent, or left behind by a dead agent
	}
	c := nc.(*net.UnixConn)
	defer c.Close()
	// Only an agent of this user gets the request, and only its answer
	// is believed.
	if p, err := peerOf(c); err != nil || p.uid != os.Getuid() {
		return nil, fmt.Errorf("%w: the socket %s does not belong to this user's agent", ErrNoAgent, path)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()

	req.V = Version
	b, err := json.Marshal(&req)
	if err != nil {
		return nil, err
	}
	c.SetWriteDeadline(time.Now().Add(requestTimeout))
	if _, err := c.Write(append(b, '\n')); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", ErrNoAgent, err)
	}
	after := req.Wait() + replySlack
	c.SetReadDeadline(time.Now().Add(after))
	line, err := readLine(c, maxResponse)
	if err != nil {
		var ne net.Error
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.As(err, &ne) && ne.Timeout():
			return nil, &NoAnswerError{After: after}
		}
		// The agent hung up without an answer: it refused this caller
		// or stopped.
		return nil, fmt.Errorf("%w: %w", ErrNoAgent, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil || resp.V != Version {
		return nil, fmt.Errorf("%w: the agent's answer is not protocol version %d", ErrNoAgent, Version)
	}
	if e := resp.Error; e != nil {
		switch e.Kind {
		case "":
		case KindUnknownAccount, KindUnsupported, KindStopping, KindBadRequest:
			return nil, fmt.Errorf("%w: %s", ErrNoAgent, e.Message)
		default:
			return nil, fmt.Errorf("%w: unknown answer %q", ErrNoAgent, e.Kind)
		}
	}
	if resp.Error == nil && resp.AccessToken == "" {
		return nil, fmt.Errorf("%w: the agent's answer holds no token", ErrNoAgent)
	}
	return &resp, nil
}
