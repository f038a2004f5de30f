// Package tokens manages the life of each account's OAuth 2.0 tokens: it
// hands out access tokens that stay valid for a safety margin and refreshes
// them (RFC 6749 section 6) when they do not. The margin adapts to the
// lifetime each token was issued with (see Margin): a token is never
// refreshed with more than half its life left, so there is one refresh per
// token however short the provider makes them.
//
// At most one refresh per account runs at a time: callers in one process
// share a single flight, and processes sharing a store take the store's
// per-account lock and re-read the record before refreshing, because another
// process may just have done it. A refresh token the provider rotated is
// written to the store before the new access token is handed out, and a
// refresh token is never dropped unless the provider said it is dead.
//
// Refresh errors are classified by what they mean. A dead grant
// (invalid_grant, revoked consent) marks the account "needs login" in the
// store and returns a *NeedsLoginError. A rejected client (invalid_client,
// unauthorized_client, an expired client secret) or a refused scope
// (invalid_scope) is a configuration problem: nothing is marked, Get keeps
// handing out the current access token while it is valid, and otherwise a
// *ClientConfigError is returned at once; the next call asks the provider
// again. Everything else (network, timeouts, HTTP 5xx, 429) is transient:
// Get keeps handing out the current access token while it is valid, and
// otherwise retries with exponential backoff and full jitter before
// returning a *TransientError.
//
// A Source's errors tell the manager what they are through small
// interfaces, all optional:
//
//	Permanent() bool                        // Permanenter: true means retrying cannot help
//	RetryAfterHint() time.Duration          // RetryAfterHinter: the provider's Retry-After
//	OAuthError() (code, description string) // OAuthErrorer: RFC 6749 section 5.2 error response
//
// An *oauth2.RetrieveError is understood as well. Errors that say nothing
// are transient.
//
// The manager never logs or words a secret: error texts from a Source pass
// through a filter that removes the account's tokens.
package tokens

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mailkey/mailkey/internal/store"
)

// Defaults for Options.
const (
	DefaultMargin      = 5 * time.Minute
	DefaultMaxAttempts = 3
	DefaultBackoffBase = time.Second
	DefaultBackoffMax  = 30 * time.Second
)

// flightTimeout bounds one refresh flight: lock wait, token requests and
// backoff. A flight outlives the caller that started it (others may be
// waiting on it), so it cannot use that caller's context alone.
const flightTimeout = 2 * time.Minute

// A Source mints tokens for one account. The CLI builds it from the account's
// configuration and internal/oauth.
type Source interface {
	// Refresh uses rec.RefreshToken (which may be "" for app-only flows,
	// which mint a fresh token instead) and returns the new token data.
	// It must not modify rec.
	Refresh(ctx context.Context, rec *store.Record) (*Fresh, error)
}

// Fresh is what a Source got from the token endpoint.
type Fresh struct {
	AccessToken string
	TokenType   string
	// RefreshToken is "" when the provider did not rotate it; the stored one
	// is kept then.
	RefreshToken string
	Expiry       time.Time
	// RefreshExpiry is when the refresh token dies, if the provider said
	// (Google's refresh_token_expires_in).
	RefreshExpiry time.Time
	// Scopes granted; nil keeps the stored ones.
	Scopes []string
	// Identity from a verified ID token; "" keeps the stored one.
	Identity string
}

// Options tune a Manager. The zero value (or nil) means the defaults.
type Options struct {
	// Margin is how long an access token must stay valid to be handed out
	// without a refresh, for tokens that live at least twice as long;
	// shorter-lived ones get half their lifetime (see Margin). Default
	// DefaultMargin.
	Margin time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx is done, between retries. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// MaxAttempts is how many times one call tries the token endpoint when
	// errors are transient. Default DefaultMaxAttempts.
	MaxAttempts int
	// BackoffBase and BackoffMax shape the delay before retry n: a uniform
	// random duration in [0, min(BackoffMax, BackoffBase·2ⁿ⁻¹)] ("full
	// jitter"), raised to the provider's Retry-After when that is longer.
	// A Retry-After beyond BackoffMax ends the retries at once.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Logger receives refresh events; it never receives secrets. Default:
	// discard.
	Logger *slog.Logger
}

// Manager hands out valid tokens for accounts. It is safe for concurrent use.
type Manager struct {
	st      store.Store
	sources func(account string) (Source, error)

	margin      time.Duration
	now         func() time.Time
	sleep       func(ctx context.Context, d time.Duration) error
	maxAttempts int
	backoffBase time.Duration
	backoffMax  time.Duration
	log         *slog.Logger
	randN       func(n int64) int64 // uniform in [0, n); replaced in tests

	flights singleflight.Group

	mu    sync.Mutex
	locks map[string]chan struct{} // per-account in-process lock, held around the store's

	// Requests in flight: from the moment a token request is sent until its
	// answer is in the store. Drain waits for them.
	flightMu sync.Mutex
	sent     map[string]int // account → requests sent and not yet stored
	idle     chan struct{}  // closed when sent empties; nil while it is empty
	closing  bool           // Drain was called: no new request may start
}

// ErrClosing is returned for a refresh that would have started after Drain:
// the process is exiting, and a request it cannot see through is not sent.
var ErrClosing = errors.New("mailkey is exiting; the token was not refreshed")

// New returns a Manager that keeps records in st and refreshes them with the
// Source that sources returns for an account. opts may be nil. New does no I/O.
func New(st store.Store, sources func(account string) (Source, error), opts *Options) *Manager {
	var o Options
	if opts != nil {
		o = *opts
	}
	m := &Manager{
		st:          st,
		sources:     sources,
		margin:      o.Margin,
		now:         o.Now,
		sleep:       o.Sleep,
		maxAttempts: o.MaxAttempts,
		backoffBase: o.BackoffBase,
		backoffMax:  o.BackoffMax,
		log:         o.Logger,
		randN:       rand.Int64N,
		locks:       make(map[string]chan struct{}),
		sent:        make(map[string]int),
	}
	if m.margin <= 0 {
		m.margin = DefaultMargin
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.sleep == nil {
		m.sleep = sleepCtx
	}
	if m.maxAttempts <= 0 {
		m.maxAttempts = DefaultMaxAttempts
	}
	if m.backoffBase <= 0 {
		m.backoffBase = DefaultBackoffBase
	}
	if m.backoffMax <= 0 {
		m.backoffMax = DefaultBackoffMax
	}
	m.backoffMax = max(m.backoffMax, m.backoffBase)
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	return m
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// mode says what a caller needs, which decides whether a refresh is due.
type mode struct {
	kind string // "get", "force" or "due", for logs and flight keys
	// within is the configured margin: the access token must stay valid
	// for Margin(rec, within).
	within time.Duration
	stale  string // force: the access token a server rejected
	// seen is the access token the caller found due; under the lock, a
	// different one means another process has just refreshed.
	seen string
	// useCurrent: on a transient failure, hand out the current access
	// token while it is still valid.
	useCurrent bool
}

// due reports whether rec needs a refresh under this mode.
func (md mode) due(rec *store.Record, now time.Time) bool {
	if md.kind == "force" && (md.stale == "" || rec.AccessToken == md.stale) {
		return true
	}
	return !validFor(rec, now, Margin(rec, md.within))
}

// replaced reports whether rec, re-read under the lock, holds a token that
// another process stored after this caller found its token due, and that
// is still valid for a moment: the caller uses it rather than refresh
// again. This keeps callers queued on the lock to one refresh even when
// the provider issues tokens shorter than MinMargin, or when they wait
// so long that the new token is due by the margin. A forced refresh has
// its own rule (stale).
func (md mode) replaced(rec *store.Record, now time.Time) bool {
	return md.kind != "force" && rec.AccessToken != md.seen && validFor(rec, now, min(md.within, replacedMinLeft))
}

// replacedMinLeft is how long a token another process just stored must
// stay valid for a caller waiting on the lock to take it.
const replacedMinLeft = time.Second

// validFor reports whether rec's access token stays valid for at least d.
// A token without an expiry counts as valid (as in golang.org/x/oauth2);
// when a server rejects it, ForceRefresh replaces it.
func validFor(rec *store.Record, now time.Time, d time.Duration) bool {
	if rec.AccessToken == "" {
		return false
	}
	return rec.Expiry.IsZero() || rec.Expiry.Sub(now) >= d
}

// validNow reports whether rec's access token has not yet expired.
func validNow(rec *store.Record, now time.Time) bool {
	return rec.AccessToken != "" && (rec.Expiry.IsZero() || rec.Expiry.After(now))
}

// Get returns the account's record with an access token valid for at least
// the margin (adapted to the token's lifetime, see Margin), refreshing it
// when needed. When the store holds such a token, Get takes no lock and
// does no network I/O.
//
// Errors: *NeedsLoginError (never logged in: wraps ErrNoToken; or the grant
// is dead), *ClientConfigError (the provider rejected the client or the
// scopes and the stored token has expired), *RefusedError (an app-only
// source was refused for good), *TransientError (refresh failed and the
// stored token has expired), or a store or context error.
func (m *Manager) Get(ctx context.Context, account string) (*store.Record, error) {
	return m.get(ctx, account, mode{kind: "get", within: m.margin, useCurrent: true})
}

// Freshness says what a stored access token is good for, as Peek sees it.
type Freshness int

const (
	// Good: valid for the margin; Get hands it out without a refresh.
	Good Freshness = iota
	// Due: still valid, but within the margin; Get would refresh it first.
	Due
	// Expired: expired, or there is no access token; only a refresh helps.
	Expired
)

func (f Freshness) String() string {
	switch f {
	case Good:
		return "good"
	case Due:
		return "due"
	}
	return "expired"
}

// Peek returns the stored record and what its access token is good for,
// from the store alone: no lock, no refresh, no network. Its errors are
// Get's, less those of a refresh.
func (m *Manager) Peek(ctx context.Context, account string) (*store.Record, Freshness, error) {
	rec, err := m.read(ctx, account)
	if err != nil {
		return nil, Expired, err
	}
	now := m.now()
	switch md := (mode{kind: "get", within: m.margin}); {
	case !md.due(rec, now):
		return rec, Good, nil
	case validNow(rec, now):
		return rec, Due, nil
	}
	return rec, Expired, nil
}

// ForceRefresh replaces an access token that a server rejected. stale is the
// rejected token: when the store no longer holds it (someone already
// refreshed) and the stored one is valid for the margin (see Margin), that
// one is returned without a refresh. An empty stale refreshes unconditionally.
// Transient failures never hand the stale token back.
func (m *Manager) ForceRefresh(ctx context.Context, account string, stale string) (*store.Record, error) {
	return m.get(ctx, account, mode{kind: "force", within: m.margin, stale: stale})
}

// RefreshDue refreshes the account's token when it expires within `within`,
// adapted to the token's lifetime as the margin is (Margin(rec, within)),
// for a background refresher, and returns the current record. Unlike Get, a
// transient failure is returned as *TransientError even while the stored
// token is valid, so the caller can reschedule; the store is unchanged then.
func (m *Manager) RefreshDue(ctx context.Context, account string, within time.Duration) (*store.Record, error) {
	return m.get(ctx, account, mode{kind: "due", within: within})
}

func (m *Manager) get(ctx context.Context, account string, md mode) (*store.Record, error) {
	rec, err := m.read(ctx, account)
	if err != nil {
		return nil, err
	}
	if !md.due(rec, m.now()) {
		return rec, nil
	}
	md.seen = rec.AccessToken

	key := md.kind + "\x00" + account + "\x00" + md.within.String()
	if md.kind == "force" {
		// The flight key holds a digest of the stale token, not the token.
		sum := sha256.Sum256([]byte(md.stale))
		key += "\x00" + hex.EncodeToString(sum[:8])
	}
	ch := m.flights.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flightTimeout)
		defer cancel()
		return m.refresh(fctx, account, md)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		// Callers of one flight share its result; give each its own copy.
		return clone(res.Val.(*store.Record)), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("account %q: %w", account, ctx.Err())
	}
}

// read returns the stored record, or the error that stops any use of it.
func (m *Manager) read(ctx context.Context, account string) (*store.Record, error) {
	rec, err := m.st.Get(ctx, account)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &NeedsLoginError{Account: account, Err: ErrNoToken}
	}
	if err != nil {
		return nil, fmt.Errorf("account %q: read token: %w", account, err)
	}
	if rec.NeedsLogin {
		code, desc := parseStoredReason(rec.Reason)
		if !ClientProblem(code, desc) {
			return nil, &NeedsLoginError{Account: account, Code: code, Reason: desc}
		}
		// An older version marked a client configuration error as a dead
		// grant; the grant may well be alive: ask the provider again. A
		// successful refresh clears the stored mark.
		rec.NeedsLogin, rec.Reason = false, ""
	}
	return rec, nil
}

// refresh runs one flight: attempts under the locks, backoff between them
// with the locks released.
func (m *Manager) refresh(ctx context.Context, account string, md mode) (*store.Record, error) {
	src, err := m.sources(account)
	if err != nil {
		// Making the source may need the provider (its discovery): that
		// failing is a refresh failing, and a valid token is still good.
		if md.useCurrent {
			if rec, rerr := m.read(ctx, account); rerr == nil && validNow(rec, m.now()) {
				m.log.Warn("token refresh failed; using the current token while it lasts",
					"account", account, "expiry", rec.Expiry, "error", redact(err.Error(), []string{rec.AccessToken, rec.RefreshToken}))
				return rec, nil
			}
		}
		return nil, fmt.Errorf("account %q: %w", account, err)
	}
	for attempt := 1; ; attempt++ {
		rec, terr, err := m.attempt(ctx, account, src, md)
		if err != nil {
			return nil, err
		}
		if terr == nil {
			return rec, nil
		}
		var ce *ClientConfigError
		if errors.As(terr, &ce) {
			// Retrying now cannot help; a later call asks again.
			if md.useCurrent && validNow(rec, m.now()) {
				m.log.Warn("the provider rejected the client; using the current token while it lasts",
					"account", account, "expiry", rec.Expiry, "error", terr.Error(),
					"fix", "check client_secret (or client_secret_cmd), the certificate and the scopes of the account; the stored login is kept")
				return rec, nil
			}
			m.log.Warn("the provider rejected the client; the stored login is kept", "account", account, "error", terr.Error())
			return nil, ce
		}
		c := classify(terr, m.now())
		if md.useCurrent && validNow(rec, m.now()) {
			m.log.Warn("token refresh failed; using the current token while it lasts",
				"account", account, "expiry", rec.Expiry, "error", terr.Error())
			return rec, nil
		}
		if attempt >= m.maxAttempts || c.retryAfter > m.backoffMax {
			m.log.Warn("token refresh failed", "account", account, "attempts", attempt, "error", terr.Error())
			return nil, &TransientError{Account: account, Err: terr, RetryAfter: c.retryAfter}
		}
		d := m.backoff(attempt, c.retryAfter)
		m.log.Warn("token refresh failed; retrying", "account", account, "attempt", attempt,
			"backoff", d, "error", terr.Error())
		if err := m.sleep(ctx, d); err != nil {
			return nil, &TransientError{Account: account, Err: terr, RetryAfter: c.retryAfter}
		}
	}
}

// backoff returns the delay before retry number attempt (1-based): full
// jitter over an exponentially growing cap, floored by retryAfter.
func (m *Manager) backoff(attempt int, retryAfter time.Duration) time.Duration {
	ceil := m.backoffMax
	if shift := attempt - 1; shift < 62 && m.backoffBase<<shift > 0 && m.backoffBase<<shift < ceil {
		ceil = m.backoffBase << shift
	}
	d := time.Duration(m.randN(int64(ceil) + 1))
	return max(d, retryAfter)
}

// attempt takes the account's locks, re-reads the record and, if a refresh
// is still due, asks src for one. It returns the record to hand out, or a
// soft error with the current record (a transient refresh error, or a
// *ClientConfigError), or a final error.
func (m *Manager) attempt(ctx context.Context, account string, src Source, md mode) (rec *store.Record, soft error, err error) {
	unlock, err := m.lock(ctx, account)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()

	// Another process (or an earlier flight here) may have refreshed while
	// this one waited for the lock. Its token is judged by its own
	// lifetime, as every process judges it.
	cur, err := m.read(ctx, account)
	if err != nil {
		return nil, nil, err
	}
	if now := m.now(); !md.due(cur, now) || md.replaced(cur, now) {
		return cur, nil, nil
	}

	// From here until the answer is stored, the request is seen through:
	// the provider may rotate the refresh token as soon as it reads it.
	if !m.begin(account) {
		return nil, nil, fmt.Errorf("account %q: %w", account, ErrClosing)
	}
	defer m.end(account)
	fresh, rerr := src.Refresh(ctx, clone(cur))
	if rerr == nil && (fresh == nil || fresh.AccessToken == "") {
		rerr = errors.New("token endpoint returned no access token")
	}
	if rerr != nil {
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("account %q: refresh: %w", account, ctx.Err())
		}
		var ec *EndpointChangedError
		if errors.As(rerr, &ec) {
			// Nothing was sent and the grant is not at fault: mark nothing.
			return nil, nil, ec
		}
		secrets := []string{cur.AccessToken, cur.RefreshToken}
		if fresh != nil {
			secrets = append(secrets, fresh.AccessToken, fresh.RefreshToken)
		}
		rerr = redactError(rerr, secrets)
		c := classify(rerr, m.now())
		if c.class == classTransient {
			return cur, rerr, nil
		}
		var rf *refusal
		if errors.As(rerr, &rf) {
			code, desc := c.code, redact(c.desc, secrets)
			if code == "" && desc == "" {
				desc = rerr.Error()
			}
			m.log.Info("the provider refused to issue a token", "account", account, "code", code, "reason", desc)
			return nil, nil, &RefusedError{Account: account, Code: code, Reason: desc, Err: rerr}
		}
		if c.class == classClient {
			// Not the grant's fault: keep it, mark nothing.
			code, desc := c.code, redact(c.desc, secrets)
			if code == "" && desc == "" {
				desc = rerr.Error()
			}
			return cur, &ClientConfigError{Account: account, Code: code, Reason: desc, Err: rerr}, nil
		}
		return nil, nil, m.markNeedsLogin(ctx, cur, c, rerr, secrets)
	}

	now := m.now()
	next := Apply(cur, fresh, now)
	rotated := fresh.RefreshToken != "" && fresh.RefreshToken != cur.RefreshToken
	next.Updated = now
	if next.Created.IsZero() {
		next.Created = now
	}
	// Persist before handing out: a rotated refresh token that is not
	// stored is lost, and the old one may already be dead.
	if err := m.st.Put(ctx, next); err != nil {
		m.log.Error("refreshed token could not be stored", "account", account, "error", err.Error())
		return nil, nil, fmt.Errorf("account %q: store refreshed token: %w", account, err)
	}
	m.log.Info("token refreshed", "account", account, "expiry", next.Expiry, "refresh_token_rotated", rotated)
	if w, _ := RefreshExpiryWarning(next, now); w != "" {
		m.log.Warn(w, "account", account)
	}
	return next, nil, nil
}

// Apply returns a copy of cur holding the fresh token, issued at now: what
// a refresh stores over the current record, and, over an account's empty
// record, what a new login stores. What fresh leaves out (a refresh token
// that did not rotate, the scopes, the identity) is kept from cur.
func Apply(cur *store.Record, fresh *Fresh, now time.Time) *store.Record {
	next := clone(cur)
	next.AccessToken = fresh.AccessToken
	next.TokenType = cmp.Or(fresh.TokenType, cur.TokenType)
	next.Expiry = fresh.Expiry
	next.Issued = now
	if fresh.RefreshToken != "" {
		next.RefreshToken = fresh.RefreshToken
		next.RefreshExpiry = fresh.RefreshExpiry // a new token's lifetime is the one just given, if any
	} else if !fresh.RefreshExpiry.IsZero() {
		next.RefreshExpiry = fresh.RefreshExpiry
	}
	if len(fresh.Scopes) > 0 {
		next.Scopes = slices.Clone(fresh.Scopes)
	}
	if fresh.Identity != "" {
		next.Identity = fresh.Identity
	}
	next.NeedsLogin, next.Reason = false, ""
	next.LastRefresh = now
	return next
}

// markNeedsLogin records that the provider called the grant dead. The
// refresh token stays in the store: a later login replaces it, and data is
// not destroyed on the strength of one error.
func (m *Manager) markNeedsLogin(ctx context.Context, cur *store.Record, c classification, rerr error, secrets []string) error {
	code, desc := c.code, redact(c.desc, secrets)
	if code == "" && desc == "" {
		desc = rerr.Error()
	}
	next := clone(cur)
	next.NeedsLogin = true
	next.Reason = storedReason(code, desc)
	next.Updated = m.now()
	if err := m.st.Put(ctx, next); err != nil {
		m.log.Error("could not mark account as needing login", "account", cur.Account, "error", err.Error())
	}
	m.log.Warn("account needs a new login", "account", cur.Account, "code", code, "reason", desc)
	return &NeedsLoginError{Account: cur.Account, Code: code, Reason: desc, Err: rerr}
}

// Save stores rec after a login, under the account's locks, and clears any
// "needs login" mark. It keeps the stored creation time and sets Updated.
// rec itself is not modified.
func (m *Manager) Save(ctx context.Context, rec *store.Record) error {
	if rec == nil || rec.Account == "" {
		return errors.New("save token: record has no account")
	}
	unlock, err := m.lock(ctx, rec.Account)
	if err != nil {
		return err
	}
	defer unlock()

	next := clone(rec)
	if next.Created.IsZero() {
		old, err := m.st.Get(ctx, rec.Account)
		switch {
		case err == nil:
			next.Created = old.Created
		case !errors.Is(err, store.ErrNotFound):
			// An unreadable old record does not block a new login.
			m.log.Warn("previous record unreadable; replacing it", "account", rec.Account, "error", err.Error())
		}
	}
	now := m.now()
	if next.Created.IsZero() {
		next.Created = now
	}
	next.Updated = now
	next.NeedsLogin, next.Reason = false, ""
	if err := m.st.Put(ctx, next); err != nil {
		return fmt.Errorf("account %q: store token: %w", rec.Account, err)
	}
	m.log.Info("token saved", "account", rec.Account, "expiry", next.Expiry)
	return nil
}

// lock takes the account's in-process lock, then the store's cross-process
// one. The in-process lock keeps two flights of this process (say Get and
// ForceRefresh) apart even if the store's lock is per process.
func (m *Manager) lock(ctx context.Context, account string) (func(), error) {
	m.mu.Lock()
	sem, ok := m.locks[account]
	if !ok {
		sem = make(chan struct{}, 1)
		m.locks[account] = sem
	}
	m.mu.Unlock()

	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("account %q: lock: %w", account, ctx.Err())
	}
	unlockStore, err := m.st.Lock(ctx, account)
	if err != nil {
		<-sem
		return nil, fmt.Errorf("account %q: lock: %w", account, err)
	}
	return func() {
		unlockStore()
		<-sem
	}, nil
}

// begin records a token request about to be sent for account, unless Drain
// was called. Every true begin is followed by one end.
func (m *Manager) begin(account string) bool {
	m.flightMu.Lock()
	defer m.flightMu.Unlock()
	if m.closing {
		return false
	}
	if len(m.sent) == 0 {
		m.idle = make(chan struct{})
	}
	m.sent[account]++
	return true
}

// end records that the answer to a request begun for account is stored (or
// that there was none to store).
func (m *Manager) end(account string) {
	m.flightMu.Lock()
	defer m.flightMu.Unlock()
	if m.sent[account]--; m.sent[account] <= 0 {
		delete(m.sent, account)
	}
	if len(m.sent) == 0 && m.idle != nil {
		close(m.idle)
		m.idle = nil
	}
}

// InFlight returns the accounts whose token requests have been sent and
// whose answers are not yet stored, sorted.
func (m *Manager) InFlight() []string {
	m.flightMu.Lock()
	defer m.flightMu.Unlock()
	accounts := make([]string, 0, len(m.sent))
	for a := range m.sent {
		accounts = append(accounts, a)
	}
	slices.Sort(accounts)
	return accounts
}

// Drain is called when the process is about to exit. From then on no new
// token request is sent (refreshes fail with ErrClosing), and Drain waits
// until every request already sent has its answer stored, or until ctx is
// done: then it returns the accounts still in flight, whose rotated refresh
// tokens may be lost if the process exits now, with ctx's error.
//
// The refresh flights themselves do not depend on their callers' contexts,
// so a caller that gave up (a signal, a timeout) does not abandon a request.
func (m *Manager) Drain(ctx context.Context) ([]string, error) {
	m.flightMu.Lock()
	m.closing = true
	idle := m.idle
	m.flightMu.Unlock()
	if idle == nil {
		return nil, nil
	}
	select {
	case <-idle:
		return nil, nil
	case <-ctx.Done():
		return m.InFlight(), ctx.Err()
	}
}

// clone returns a deep copy of rec.
func clone(rec *store.Record) *store.Record {
	c := *rec
	c.Scopes = slices.Clone(rec.Scopes)
	return &c
}
