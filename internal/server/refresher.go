package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/mailkey/mailkey/internal/audit"
	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/internal/tokens"
)

// Background refresh timing.
const (
	// minRefreshWait keeps a broken clock or a token that is born expired
	// from spinning the refresher.
	minRefreshWait = 500 * time.Millisecond
	// noExpiryWait: a token without an expiry is checked this often.
	noExpiryWait = time.Hour
	// holdOffWait: an account whose client or endpoint needs a fix is
	// asked about again this often (the user may have fixed it meanwhile).
	holdOffWait = 5 * time.Minute
	// loginWatchWait: an account that needs a login is looked at again
	// this often, so that a login from another process (mailkey login)
	// is noticed soon. The look reads the store only: a grant marked dead
	// is never sent to the provider.
	loginWatchWait = 10 * time.Second
	// maxCheckWait bounds the wait after a fresh token: another process
	// (mailkey login, another instance) may have replaced it meanwhile,
	// and checking the store costs no request to the provider.
	maxCheckWait = time.Minute
	// transientWaitMin and transientWaitMax shape the backoff after
	// transient failures.
	transientWaitMin = 5 * time.Second
	transientWaitMax = 5 * time.Minute
)

// refresher keeps one account's token fresh ahead of its expiry, so that a
// login through the proxy never waits for the provider.
type refresher struct {
	account string
	tokens  Tokens
	margin  time.Duration // the token manager's margin, where callers refresh
	// window: refresh when the token expires within this, adapted to the
	// token's lifetime as the manager adapts its margin (tokens.Margin).
	window time.Duration
	now    func() time.Time
	log    *slog.Logger
	m      *metrics
	hint   func(account string, err error) string // Config.Hint
	// command words a next step (Config.Command) for notifications.
	command func(step Step, account string) string
	// email is the account's address, for notifications.
	email string
	// notify hears what each check found; nil sends nothing.
	notify *notifier
	// kick makes the refresher look at the token now: the proxy replaced
	// it after an upstream refusal, so its expiry changed.
	kick chan struct{}
	// stop ends run; set when it starts.
	stop context.CancelFunc

	mu     sync.Mutex
	result refreshResult // the last check's outcome, for the status page

	// Owned by run's goroutine.
	failures   int    // transient failures in a row
	last       string // the access token seen last, to tell a refresh
	needsLogin bool   // the last check found that the account needs a login
}

// newRefresher returns the refresher of account for the token manager's
// margin: it refreshes a token once it expires within twice the margin, or
// at half its life when it lives shorter than four margins.
func newRefresher(account string, tok Tokens, margin time.Duration, log *slog.Logger, m *metrics) *refresher {
	return &refresher{account: account, tokens: tok, margin: margin, window: 2 * margin, now: time.Now,
		log: log, m: m, kick: make(chan struct{}, 1), stop: func() {}}
}

// hintFor words the next step for err, or "" without a Config.Hint.
func (r *refresher) hintFor(err error) string {
	if r.hint == nil {
		return ""
	}
	return r.hint(r.account, err)
}

// holdOff counts and logs a failure of class that only a change by the
// user can cure, and returns the wait before the next look.
func (r *refresher) holdOff(err error, class, msg string) time.Duration {
	r.failures = 0
	r.m.refreshes.WithLabelValues(r.account, class).Inc()
	r.log.Warn(msg, "account", r.account, "class", class, "error", err.Error(), "fix", r.hintFor(err), "retry_in", holdOffWait)
	r.observe(condFailing, r.account+": "+msg+run(r.command, "", StepTest, r.account), time.Time{})
	return holdOffWait
}

// observe tells the notifier what a check found.
func (r *refresher) observe(c condition, msg string, grantEnd time.Time) {
	r.needsLogin = c == condNeedsLogin
	if r.notify != nil {
		r.notify.observe(r.account, r.email, c, msg, grantEnd)
	}
}

// refreshResult is the outcome of a refresher's last check.
type refreshResult struct {
	At    time.Time
	Error string // why it failed, "" when it did not; never a secret
	Fix   string // the next step for Error (Config.Hint)
}

// lastResult is the outcome of the last check; its At is zero before one.
func (r *refresher) lastResult() refreshResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.result
}

func (r *refresher) setResult(err error) {
	res := refreshResult{At: r.now()}
	if err != nil {
		res.Error, res.Fix = err.Error(), r.hintFor(err)
	}
	r.mu.Lock()
	r.result = res
	r.mu.Unlock()
}

// poke asks for a check now, without blocking.
func (r *refresher) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// run refreshes until ctx is done.
func (r *refresher) run(ctx context.Context) {
	// Spread the first round, so that many accounts do not all hit their
	// providers in the same second.
	wait := time.Duration(rand.Int64N(int64(time.Second)))
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.kick:
			t.Stop()
		case <-t.C:
		}
		wait = r.check(ctx)
		if ctx.Err() != nil {
			return
		}
	}
}

// check looks at the token once, refreshing it when due, and returns the
// wait before the next check. Only a fresh token is looked at again within
// maxCheckWait: after a failure the next check asks the provider again, so
// the backoff, its Retry-After and the wait after a refusal stand.
func (r *refresher) check(ctx context.Context) time.Duration {
	rec, err := r.tokens.RefreshDue(ctx, r.account, r.window)
	if ctx.Err() != nil {
		return 0
	}
	r.setResult(err)
	var nl *tokens.NeedsLoginError
	var rf *tokens.RefusedError
	var ce *tokens.ClientConfigError
	var te *tokens.TransientError
	var ec *tokens.EndpointChangedError
	switch {
	case err == nil:
		r.failures = 0
		result := "fresh"
		if r.last != "" && rec.AccessToken != r.last {
			result = "refreshed"
			r.log.Info("token refreshed", "account", r.account, "expiry", rec.Expiry)
			if r.notify != nil {
				r.notify.audit.Record(audit.Event{Event: audit.GrantRefreshed, Account: r.account})
			}
		}
		r.last = rec.AccessToken
		r.m.refreshes.WithLabelValues(r.account, result).Inc()
		next := min(r.next(rec), maxCheckWait)
		r.log.Debug("token checked", "account", r.account, "result", result, "expiry", rec.Expiry, "next_check_in", next)
		r.observe(condOK, r.account+": its mail clients can log in again", rec.RefreshExpiry)
		return next
	case errors.As(err, &nl):
		r.failures = 0
		r.m.refreshes.WithLabelValues(r.account, "permanent").Inc()
		// Said once, then looked at quietly until a login mends it.
		level := slog.LevelWarn
		if r.needsLogin {
			level = slog.LevelDebug
		}
		r.log.Log(ctx, level, "account needs a login: its mail clients cannot log in until then", "account", r.account,
			"class", "permanent", "error", err.Error(), "run", r.hintFor(err))
		r.observe(condNeedsLogin, r.account+": needs a login, its mail clients cannot log in until then"+run(r.command, "", StepLogin, r.account), time.Time{})
		return loginWatchWait
	case errors.As(err, &ce):
		// The app's configuration: the grant is kept; ask again later, in
		// case the client secret has been fixed.
		return r.holdOff(err, "client", "the provider rejected the client: its mail clients cannot log in once the current token expires, until the client's configuration is fixed")
	case errors.As(err, &ec):
		// Nothing was sent and the grant is kept; ask again later, in
		// case the account logged in or its configuration was restored.
		return r.holdOff(err, "endpoint", "the token endpoint changed since the login: its mail clients cannot log in once the current token expires, until the account logs in again or its configuration is restored")
	case errors.As(err, &rf):
		// App-only: nothing to log in to; ask again later, in case
		// the configuration at the provider has been fixed.
		return r.holdOff(err, "refused", "the provider refused to issue a token: its mail clients cannot log in until the app's configuration at the provider is fixed")
	}
	r.failures++
	r.m.refreshes.WithLabelValues(r.account, "transient").Inc()
	wait := min(transientWaitMax, transientWaitMin<<min(r.failures-1, 10))
	wait = wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
	if errors.As(err, &te) && te.RetryAfter > wait {
		wait = te.RetryAfter
	}
	r.log.Warn("token refresh failed", "account", r.account, "class", "transient", "error", err.Error(), "retry_in", wait)
	if r.failures >= failingAfter {
		r.observe(condFailing, fmt.Sprintf("%s: the token refresh failed %d times in a row: %v", r.account, r.failures, err), time.Time{})
	}
	return wait
}

// next is the wait before rec's token enters the window as adapted to its
// lifetime, so that each token is refreshed once, and never with more than
// half its life left: a provider issuing tokens shorter than the window is
// not asked again at once. The wake-up falls just inside the window, so
// that the check finds the token due; a random delay of up to a quarter of
// the lead the window keeps over the manager's margin spreads accounts
// without letting callers reach that margin first.
func (r *refresher) next(rec *store.Record) time.Duration {
	if rec.Expiry.IsZero() {
		return noExpiryWait
	}
	window := tokens.Margin(rec, r.window)
	lead := max(window-tokens.Margin(rec, r.margin), 0)
	jitter := 1 + time.Duration(rand.Int64N(int64(lead/4)+1))
	return max(minRefreshWait, rec.Expiry.Sub(r.now())-window+jitter)
}
