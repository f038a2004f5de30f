package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mailkey/mailkey/internal/atomicfile"
	"github.com/mailkey/mailkey/internal/flock"
	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/internal/tokens"
)

// A credential helper's process must end at once: mail clients such as
// msmtp wait for it to exit, and a refresh, once sent, must not be abandoned
// when the client gives up and kills it. So `mailkey token` never sends a
// token request itself. It hands out a valid stored token at once and, when
// that token is due for an early refresh, starts a detached
// `mailkey background-refresh` process that refreshes it under the store's
// lock. Only an expired token makes it wait, for the detached process's
// answer, as long as --wait allows; the detached process sees its request
// through whatever the caller does.

// refreshDirName is the state folder's subfolder of refresher locks: one
// detached refresher per account runs at a time.
const refreshDirName = "refresh"

// refreshNotice is how long an expired token's wait lasts before a line on
// a terminal says what mailkey waits for.
const refreshNotice = time.Second

// refreshCmd is the detached refresher. It is not for users; `mailkey token`
// starts it.
type refreshCmd struct {
	Account string `arg:"" help:"The account whose token to refresh."`
	IfIdle  bool   `name:"if-idle" help:"Exit at once if a refresher for the account is running."`
}

// refreshResult is what the detached refresher writes to its stdout, one
// JSON line, for a caller that waits for it.
type refreshResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Hint  string `json:"hint,omitempty"`
	Code  int    `json:"code,omitempty"`
	// Log holds the warnings the refresh wrote (never secrets), for the
	// caller to show: the refresher's own stderr goes nowhere, since a
	// caller's pipe held open by it would keep a mail client waiting.
	Log []string `json:"log,omitempty"`
}

func (c *refreshCmd) Run(e *env) error {
	// The caller and its terminal may be gone; only SIGTERM (a shutdown)
	// still ends it, after its request is seen through.
	signal.Ignore(os.Interrupt, syscall.SIGHUP)
	var log lineBuffer
	stderr := e.stderr
	e.stderr = io.MultiWriter(stderr, &log)
	rr, ran := c.refresh(e)
	rr.Log = log.lines()
	if ran {
		// For mailkey status: a due token's refresh fails with nobody
		// watching, and the token keeps working until it expires.
		saveLastRefresh(c.Account, rr)
	}
	return json.NewEncoder(e.stdout).Encode(rr) // the caller may have left: nothing to do then
}

// lastRefresh is what STATE/refresh/ACCOUNT.json says of the latest
// detached refresh: when it ran and how it ended. It holds no secret.
type lastRefresh struct {
	Time time.Time `json:"time"`
	refreshResult
}

func lastRefreshPath(dir, account string) string {
	return filepath.Join(dir, refreshDirName, account+".json")
}

// saveLastRefresh records how a detached refresh ended; a failure to write
// it changes nothing else.
func saveLastRefresh(account string, rr refreshResult) {
	dir, err := stateDir()
	if err != nil {
		return
	}
	b, err := json.Marshal(lastRefresh{Time: time.Now().UTC(), refreshResult: rr})
	if err != nil {
		return
	}
	_ = atomicfile.WriteFile(lastRefreshPath(dir, account), append(b, '\n'), 0o600)
}

// loadLastRefresh reads what saveLastRefresh wrote, if anything.
func loadLastRefresh(dir, account string) (lastRefresh, bool) {
	var lr lastRefresh
	b, err := os.ReadFile(lastRefreshPath(dir, account))
	if err != nil || json.Unmarshal(b, &lr) != nil || lr.Time.IsZero() {
		return lastRefresh{}, false
	}
	return lr, true
}

// lineBuffer collects what is written to it, as lines.
type lineBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lineBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lineBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(strings.TrimRight(l.b.String(), "\n"), "\n") {
		if line != "" {
			out = append(out, line)
		}
	}
	return out
}

// refresh runs the refresh; ran is false when it did nothing (a bad name,
// or another refresher was at it).
func (c *refreshCmd) refresh(e *env) (rr refreshResult, ran bool) {
	fail := func(err error) refreshResult {
		msg, hint, code := worded(err)
		return refreshResult{Error: msg, Hint: hint, Code: code}
	}
	if err := store.ValidateAccount(c.Account); err != nil {
		return fail(err), false
	}
	dir, err := stateDir()
	if err != nil {
		return fail(err), false
	}
	locks := filepath.Join(dir, refreshDirName)
	if err := os.MkdirAll(locks, 0o700); err != nil {
		return fail(fmt.Errorf("create %s: %w", locks, err)), false
	}
	lctx := e.ctx
	if c.IfIdle {
		done, cancel := context.WithCancel(e.ctx)
		cancel() // a lock that is taken is not waited for
		lctx = done
	}
	unlock, err := flock.Lock(lctx, filepath.Join(locks, c.Account+".lock"))
	if err != nil {
		if c.IfIdle && errors.Is(err, context.Canceled) && e.ctx.Err() == nil {
			return refreshResult{OK: true}, false // another refresher is at it
		}
		return fail(fmt.Errorf("account %s: %w", c.Account, err)), false
	}
	defer unlock()
	a, err := e.openAccountDeferred(c.Account)
	if err != nil {
		return fail(err), true
	}
	if _, err := a.token(e.ctx); err != nil {
		return fail(err), true
	}
	return refreshResult{OK: true}, true
}

// releaseRefresher lets an early refresher started by mailkey token run on
// alone. Tests replace it to wait for the refresher before their folders go.
var releaseRefresher = func(cmd *exec.Cmd) { _ = cmd.Process.Release() }

// startRefresher starts a detached `mailkey background-refresh` for
// account, in its own session so that the caller's terminal and process
// group signals do not reach it. Its stdout is stdout (nil: discarded).
func startRefresher(account string, stdout *os.File, ifIdle bool) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"background-refresh", account}
	if ifIdle {
		args = append(args, "--if-idle")
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout = stdout
	cmd.SysProcAttr = detached()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// helperToken is the token for `mailkey token`: from the store when it is
// valid, with an early refresh left to a detached process; an expired one
// waits up to wait (0: as long as the refresh takes) for a detached refresh.
func (a *acct) helperToken(e *env, wait time.Duration) (*store.Record, error) {
	name := a.conf.Name
	// Most calls find a token valid beyond the margin, and need neither the
	// seed nor a watch on the exit signals: nothing is waited for.
	if rec, f, err := a.mgr.Peek(e.ctx, name); err == nil && f == tokens.Good {
		return rec, nil
	}
	e.life.watch()
	if err := a.seed(e.ctx); err != nil {
		return nil, err
	}
	rec, f, err := a.mgr.Peek(e.ctx, name)
	if err != nil {
		return nil, tokenError(a.conf, err)
	}
	switch f {
	case tokens.Good:
		return rec, nil
	case tokens.Due:
		if cmd, err := startRefresher(name, nil, true); err != nil {
			e.logger().Warn("could not start a background refresh; the next call tries again", "account", name, "error", err.Error())
		} else {
			releaseRefresher(cmd)
		}
		return rec, nil
	}
	return a.refreshDetached(e, wait)
}

// refreshDetached has a detached refresher refresh the account and waits
// for its answer, up to wait. A caller that stops waiting (the bound, a
// signal) leaves the refresher to finish and store what it gets.
func (a *acct) refreshDetached(e *env, wait time.Duration) (*store.Record, error) {
	name := a.conf.Name
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", name, err)
	}
	defer r.Close()
	cmd, err := startRefresher(name, w, false)
	w.Close()
	if err != nil {
		// No second process: refresh here, seen through by the lifecycle.
		e.logger().Warn("could not start a background refresh; refreshing in this process", "account", name, "error", err.Error())
		return a.token(e.ctx)
	}
	defer cmd.Process.Release()
	answer := make(chan refreshResult, 1)
	go func() {
		var rr refreshResult
		if err := json.NewDecoder(r).Decode(&rr); err != nil {
			rr = refreshResult{Code: exitTempFail,
				Error: fmt.Sprintf("account %s: the background refresh stopped without an answer", name),
				Hint:  "try again: mailkey token " + name}
		}
		answer <- rr
	}()
	var bound <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		bound = t.C
	}
	var notice <-chan time.Time
	if isTerminal(e.stderr) {
		t := time.NewTimer(refreshNotice)
		defer t.Stop()
		notice = t.C
	}
	goesOn := "the refresh goes on in the background and saves its token: try again in a moment (mailkey token " + name + ")"
	for {
		select {
		case rr := <-answer:
			for _, line := range rr.Log {
				fmt.Fprintln(e.stderr, line)
			}
			if !rr.OK {
				return nil, &Error{Msg: rr.Error, Hint: rr.Hint, Code: rr.Code}
			}
			rec, f, err := a.mgr.Peek(e.ctx, name)
			if err != nil {
				return nil, tokenError(a.conf, err)
			}
			if f == tokens.Expired {
				return nil, &Error{Msg: fmt.Sprintf("account %s: the provider issued a token that has already expired", name),
					Hint: "check the clock of this machine (mailkey status " + name + " shows the expiry)", Code: exitTempFail}
			}
			return rec, nil
		case <-notice:
			if wait > 0 {
				e.notef("waiting up to %s for the provider to refresh the token of %s…", wait, name)
			} else {
				e.notef("waiting for the provider to refresh the token of %s…", name)
			}
		case <-bound:
			return nil, &Error{Msg: fmt.Sprintf("account %s: the provider did not refresh the token within %s", name, wait),
				Hint: goesOn, Code: exitTempFail}
		case <-e.ctx.Done():
			return nil, &Error{Msg: fmt.Sprintf("account %s: interrupted while the provider refreshes the token", name),
				Hint: goesOn, Err: e.ctx.Err()}
		}
	}
}

// isTerminal reports whether w is a terminal (or another character device).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
