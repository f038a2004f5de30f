// Package audit records security-relevant acts of mailkey: app passwords
// used, refused or rate-limited, logins and logouts, grants refreshed,
// lost and recovered, configuration reloads. Each act is one Event, logged
// through log/slog and, when a file is configured, appended to it as one
// JSON line.
//
// Several processes append to one file (mailkey serve, and mailkey login
// or logout beside it). Every event is one write(2) of one line, shorter
// than PIPE_BUF, to a file opened with O_APPEND: POSIX makes each such
// write land whole at the end of the file, so lines never interleave.
//
// An event never holds a secret: its fields are names, addresses, labels
// and outcomes, never a password, token or code.
package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/mailkey/mailkey/internal/secperm"
)

// Event kinds.
const (
	AppPasswordUsed        = "app-password-used"
	AppPasswordFailed      = "app-password-failed"
	AppPasswordRateLimited = "app-password-rate-limited"
	Login                  = "login"
	Logout                 = "logout"
	GrantRefreshed         = "grant-refreshed"
	GrantLost              = "grant-lost"
	GrantRecovered         = "grant-recovered"
	ConfigReloaded         = "config-reloaded"
	ConfigRefused          = "config-refused"
)

// lineLimit keeps a line, with its newline, within PIPE_BUF (4096 bytes on
// Linux, 512 by POSIX's floor; Linux and the BSDs append whole writes of any
// size to regular files, but a line this short is atomic everywhere).
const lineLimit = 4000

// detailLimit bounds Detail, so that lineLimit holds.
const detailLimit = 1024

// fieldLimit bounds the other text fields.
const fieldLimit = 256

// Event is one security-relevant act.
type Event struct {
	Time  time.Time `json:"time"`
	Event string    `json:"event"`
	// Account is the account acted on, "" when none is known (a login
	// name that names no account).
	Account string `json:"account,omitempty"`
	// Login is the user name a mail client sent, as the log shows it.
	Login string `json:"login,omitempty"`
	// Label names the app password used.
	Label string `json:"label,omitempty"`
	// Source is the client's address.
	Source   string `json:"source,omitempty"`
	Protocol string `json:"protocol,omitempty"`
	// Detail says more in words (a flow, a reason, a file:line error).
	Detail string `json:"detail,omitempty"`
	// Process is the mailkey command that recorded it: serve, login, ….
	Process string `json:"process,omitempty"`
	PID     int    `json:"pid,omitempty"`
}

// Log records events. The zero of its file means slog only.
type Log struct {
	path    string
	process string
	log     *slog.Logger
	now     func() time.Time

	mu      sync.Mutex
	warned  bool // a write failure was logged
	checked bool // the file's permissions were looked at
}

// New returns a Log that logs to log and, when path is not "", appends to
// the file at path (created 0600). process names the command recording.
func New(path, process string, log *slog.Logger) *Log {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Log{path: path, process: process, log: log, now: time.Now}
}

// Path is the file events are appended to, "" for none.
func (l *Log) Path() string { return l.path }

// Record logs e and appends it to the file. A file that cannot be written
// is logged once as an error; the act itself goes on.
func (l *Log) Record(e Event) {
	if l == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	e.Time = e.Time.UTC()
	e.Process, e.PID = l.process, os.Getpid()
	e.clip()
	attrs := []any{"event", e.Event}
	for _, kv := range [][2]string{{"account", e.Account}, {"login", e.Login}, {"label", e.Label},
		{"source", e.Source}, {"protocol", e.Protocol}, {"detail", e.Detail}} {
		if kv[1] != "" {
			attrs = append(attrs, kv[0], kv[1])
		}
	}
	l.log.Info("audit", attrs...)
	if l.path == "" {
		return
	}
	if err := l.append(e); err != nil {
		l.mu.Lock()
		first := !l.warned
		l.warned = true
		l.mu.Unlock()
		if first {
			l.log.Error("audit file cannot be written: events go to the log only", "file", l.path, "error", err.Error())
		}
	}
}

// clip shortens the fields so that the line stays within lineLimit.
func (e *Event) clip() {
	for _, f := range []*string{&e.Event, &e.Account, &e.Login, &e.Label, &e.Source, &e.Protocol, &e.Process} {
		*f = clip(*f, fieldLimit)
	}
	e.Detail = clip(e.Detail, detailLimit)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 { // not inside a UTF-8 sequence
		n--
	}
	return s[:n] + "…"
}

// append writes e as one line in one write.
func (l *Log) append(e Event) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if len(line) > lineLimit {
		// Escaping can grow text up to six times; clip harder.
		e.Detail = clip(e.Detail, 64)
		if line, err = json.Marshal(e); err != nil {
			return err
		}
		line = append(line, '\n')
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	l.mu.Lock()
	check := !l.checked
	l.checked = true
	l.mu.Unlock()
	if fi, err := f.Stat(); check && err == nil {
		// Not refused: losing the trail would be worse than showing it.
		if err := secperm.Check(l.path, fi); err != nil {
			l.log.Warn("the audit file shows who logged in from where to other users", "error", err.Error())
		}
	}
	_, werr := f.Write(line)
	cerr := f.Close()
	return errors.Join(werr, cerr)
}

// Filter selects events for Read.
type Filter struct {
	Account string    // "" for every account
	Since   time.Time // zero for all time
}

// Read returns the events of the file at path that f selects, in file
// order. Lines that are not events (a torn line after a crash, an edit by
// hand) are skipped and counted in skipped.
func Read(path string, f Filter) (events []Event, skipped int, err error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer file.Close()
	return read(file, f)
}

func read(r io.Reader, f Filter) (events []Event, skipped int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Event == "" || e.Time.IsZero() {
			skipped++
			continue
		}
		if f.Account != "" && e.Account != f.Account {
			continue
		}
		if !f.Since.IsZero() && e.Time.Before(f.Since) {
			continue
		}
		events = append(events, e)
	}
	if err := sc.Err(); err != nil {
		return events, skipped, fmt.Errorf("read the audit file: %w", err)
	}
	return events, skipped, nil
}
