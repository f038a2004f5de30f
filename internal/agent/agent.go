// Package agent is mailkey's token agent: a process that holds the opened
// token store and answers `mailkey token` over a Unix socket in the state
// folder, as ssh-agent answers ssh. Opening a passphrase-protected store
// runs scrypt (about a second and 256 MiB); a credential helper that asks
// an agent opens nothing.
//
// The protocol is one JSON request line and one JSON response line per
// connection:
//
//	→ {"v":1,"account":"work","wait_ms":30000}
//	← {"v":1,"access_token":"…","token_type":"Bearer","expiry":"2026-01-02T15:04:05Z"}
//	← {"v":1,"error":{"message":"…","hint":"…","exit_code":75}}
//
// The socket is created 0600 in a 0700 folder, and every connection's peer
// is checked with the kernel's credentials (SO_PEERCRED on Linux,
// LOCAL_PEERCRED on macOS and FreeBSD): a peer running as another user is
// refused before it can send a request. The client checks the agent the
// same way. Where no peer check exists (Windows, other systems) there is
// no agent, and the helper reads the store itself.
//
// This package knows sockets, framing and limits; what a token request is
// answered with is the Handler's business (package cli).
package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Version is the protocol version this package speaks.
const Version = 1

// Limits of the protocol.
const (
	// maxRequest bounds a request line: an account name is at most 64
	// bytes, so 4 KiB is generous.
	maxRequest = 4 << 10
	// maxResponse bounds a response line: access tokens are at most a few
	// KiB (Microsoft's JWTs are the longest seen).
	maxResponse = 64 << 10
	// MaxWait is the longest a request waits for a refresh: longer than a
	// refresh flight may take, so a wait of 0 ("until the refresh ends")
	// means this.
	MaxWait = 3 * time.Minute
	// replySlack is how much longer than the wait a client waits for the
	// answer before it gives up on the agent.
	replySlack = 10 * time.Second
)

// Bounds of one connection. They are variables so that tests on a starved
// machine can lift them; nothing else changes them.
var (
	// requestTimeout bounds how long a peer may take to send its request,
	// and the agent to write its answer.
	requestTimeout = 5 * time.Second
	// dialTimeout: a socket whose agent does not accept this fast is
	// treated as absent. A dead agent's socket refuses at once; a live
	// agent's queues the connection, so only a hung agent makes a caller
	// wait this long before it reads the store itself.
	dialTimeout = 10 * time.Second
)

// Socket names.
const (
	socketName = "agent.sock"
	lockName   = "agent.lock"
)

// Request is what `mailkey token` asks.
type Request struct {
	V       int    `json:"v"`
	Account string `json:"account"`
	// WaitMS is how long the caller waits for a refresh of an expired
	// token, in milliseconds; 0 waits until the refresh ends (MaxWait).
	WaitMS int64 `json:"wait_ms,omitempty"`
}

// Wait returns the request's wait, bounded by MaxWait.
func (r *Request) Wait() time.Duration {
	if r.WaitMS <= 0 || r.WaitMS > MaxWait.Milliseconds() {
		return MaxWait
	}
	return time.Duration(r.WaitMS) * time.Millisecond
}

// Response is the agent's answer: a token, or an error.
type Response struct {
	V           int       `json:"v"`
	AccessToken string    `json:"access_token,omitempty"`
	TokenType   string    `json:"token_type,omitempty"`
	Expiry      time.Time `json:"expiry,omitzero"`
	Error       *Error    `json:"error,omitempty"`
}

// String describes r without its token, so that printing or logging a
// Response cannot leak it.
func (r *Response) String() string {
	if r.Error != nil {
		return "agent error: " + r.Error.Message
	}
	return fmt.Sprintf("agent token (%s, %d bytes, expires %s)", r.TokenType, len(r.AccessToken), r.Expiry.Format(time.RFC3339))
}

// Error is a failure worded for the user, as the CLI words it.
type Error struct {
	// Kind is "" for a failure to report as it is; the Kind constants
	// tell the client to read the store itself instead.
	Kind    string `json:"kind,omitempty"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
	// Code is the exit status the CLI uses (75: try again later).
	Code int `json:"exit_code,omitempty"`
}

// Kinds of Error after which the client reads the store itself.
const (
	// KindUnknownAccount: the account is not in the agent's configuration
	// (added after the agent started).
	KindUnknownAccount = "unknown_account"
	// KindUnsupported: the agent does not speak the request's version.
	KindUnsupported = "unsupported_version"
	// KindStopping: the agent is shutting down.
	KindStopping = "stopping"
	// KindBadRequest: the request could not be read.
	KindBadRequest = "bad_request"
)

// ErrNoAgent is wrapped by the client's errors that mean "no agent
// answers": read the store instead.
var ErrNoAgent = errors.New("no mailkey agent answers")

// ErrUnsupported is returned by Listen where the system has no way to
// check a peer's user.
var ErrUnsupported = errors.New("the token agent needs Unix sockets with peer credentials, which this system lacks")

// ErrStopping is the cause of a Handler's context when the agent shuts
// down (context.Cause).
var ErrStopping = errors.New("the mailkey agent is stopping")

// RunningError says another agent holds the state folder.
type RunningError struct{ Socket string }

func (e *RunningError) Error() string {
	return "another mailkey agent (mailkey agent or mailkey serve) already answers for this state folder on " + e.Socket
}

// PathError says why there is no usable socket path.
type PathError struct {
	Path string
	Msg  string
}

func (e *PathError) Error() string { return "agent socket " + e.Path + ": " + e.Msg }

// SocketPath returns the agent socket of the state folder dir:
// DIR/agent.sock, or, when that is too long for a socket address (about
// 104 bytes), $XDG_RUNTIME_DIR/mailkey/agent-HASH.sock, HASH naming the
// folder. It does no I/O beyond resolving dir's symbolic links.
func SocketPath(dir string) (string, error) {
	dir = canonical(dir)
	p := filepath.Join(dir, socketName)
	if len(p) <= maxSocketPath {
		return p, nil
	}
	run := os.Getenv("XDG_RUNTIME_DIR")
	if filepath.IsAbs(run) {
		sum := sha256.Sum256([]byte(dir))
		q := filepath.Join(run, "mailkey", "agent-"+hex.EncodeToString(sum[:8])+".sock")
		if len(q) <= maxSocketPath {
			return q, nil
		}
	}
	return "", &PathError{Path: p, Msg: fmt.Sprintf("longer than the %d bytes a socket address holds, and XDG_RUNTIME_DIR offers no shorter place; set MAILKEY_STATE_DIR to a shorter folder", maxSocketPath)}
}

// maxSocketPath is the longest socket path that fits sun_path on every
// supported system with its terminating NUL (104 bytes on macOS and the
// BSDs, 108 on Linux).
const maxSocketPath = 103

// canonical makes dir absolute with its links resolved, as the store does,
// so that the agent and its clients agree on one path. For a folder that
// does not exist yet, the links of its deepest existing parent are
// resolved: it resolves the same once created.
func canonical(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	var missing []string
	for {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(append([]string{real}, missing...)...)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return filepath.Join(append([]string{dir}, missing...)...)
		}
		missing = append([]string{filepath.Base(dir)}, missing...)
		dir = parent
	}
}
