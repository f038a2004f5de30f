package tokens

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// ErrNoToken is the cause of the *NeedsLoginError returned for an account
// that has never logged in (the store has no record for it).
var ErrNoToken = errors.New("no token yet")

// Permanenter is implemented by refresh errors that know whether the grant
// is dead. Permanent() == true means no retry can succeed and the user has to
// log in again (invalid_grant, invalid_client, unauthorized_client, revoked
// consent). When an error in the chain implements it, its answer decides.
type Permanenter interface {
	Permanent() bool
}

// RetryAfterHinter is implemented by refresh errors that carry the
// provider's Retry-After (HTTP 429 or 503). The hint is a floor for the next
// backoff delay.
type RetryAfterHinter interface {
	RetryAfterHint() time.Duration
}

// OAuthErrorer is implemented by refresh errors that carry the token
// endpoint's error response (RFC 6749 section 5.2): the "error" code and the
// "error_description". They become NeedsLoginError.Code and Reason.
type OAuthErrorer interface {
	OAuthError() (code, description string)
}

// permanentCodes are the RFC 6749 section 5.2 (and OpenID Connect Core
// section 3.1.2.6) error codes after which only a new login helps, used when
// the error does not classify itself. Microsoft answers a refresh with
// interaction_required or consent_required when consent was revoked or MFA
// is newly required.
var permanentCodes = map[string]bool{
	"invalid_grant":        true,
	"invalid_client":       true,
	"unauthorized_client":  true,
	"interaction_required": true,
	"consent_required":     true,
	"login_required":       true,
}

// NeedsLoginError says that the account cannot get a token until the user
// logs in again: the provider called the grant dead, or there never was one
// (then errors.Is(err, ErrNoToken)).
type NeedsLoginError struct {
	Account string
	// Code is the provider's error code (invalid_grant, …), "" if unknown.
	Code string
	// Reason is the provider's description, with secrets removed.
	Reason string
	// Err is the cause: ErrNoToken, the refresh error, or nil when the
	// store already marked the account.
	Err error
}

func (e *NeedsLoginError) Error() string {
	if errors.Is(e.Err, ErrNoToken) {
		return fmt.Sprintf("account %s has no token yet", e.Account)
	}
	return withProviderError(fmt.Sprintf("account %s needs a new login", e.Account), e.Code, e.Reason)
}

// withProviderError appends the provider's error code and description to
// msg, each when known.
func withProviderError(msg, code, reason string) string {
	if code != "" {
		msg += ": " + code
	}
	if reason != "" {
		msg += ": " + reason
	}
	return msg
}

func (e *NeedsLoginError) Unwrap() error { return e.Err }

// Hint returns the command that fixes the error: "mailkey login ACCOUNT".
func (e *NeedsLoginError) Hint() string { return "mailkey login " + e.Account }

// RefusedError says that the provider refused to mint a token for a source
// that holds no grant (an app-only flow, whose errors went through Refusal):
// its configuration at the provider is wrong, not a login. Nothing is marked
// in the store, so the next Get asks the provider again.
type RefusedError struct {
	Account string
	// Code is the provider's error code (invalid_grant, …), "" if unknown.
	Code string
	// Reason is the provider's description, with secrets removed.
	Reason string
	Err    error
}

func (e *RefusedError) Error() string {
	return withProviderError(fmt.Sprintf("account %s: the provider refused to issue a token", e.Account), e.Code, e.Reason)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// Refusal marks err, from a Source that mints tokens without a stored grant
// (client credentials, a service account), so that a permanent failure
// becomes a *RefusedError rather than marking the account "needs login":
// nobody can log in to such an account, and once its configuration at the
// provider is fixed the next request simply works.
func Refusal(err error) error {
	if err == nil {
		return nil
	}
	return &refusal{err: err}
}

type refusal struct{ err error }

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// TransientError says that refreshing failed for a reason that may pass
// (network, timeout, HTTP 5xx, 429) and the stored token could not be used.
// The stored record, refresh token included, is unchanged.
type TransientError struct {
	Account string
	// Err is the last refresh error; its text has secrets removed.
	Err error
	// RetryAfter is the provider's Retry-After, 0 if it sent none.
	RetryAfter time.Duration
}

func (e *TransientError) Error() string {
	s := fmt.Sprintf("account %s: token refresh failed", e.Account)
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s + ": " + e.Err.Error()
}

func (e *TransientError) Unwrap() error { return e.Err }

// redactedError keeps an error's chain for errors.As but words it with
// known secrets cut out, in case a Source put one into its text.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redactError(err error, secrets []string) error {
	return &redactedError{msg: redact(err.Error(), secrets), err: err}
}

// redact replaces every secret in s.
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

// classification is what the manager needs to know about a refresh error.
type classification struct {
	permanent  bool
	code, desc string
	retryAfter time.Duration
}

// classify sorts a refresh error into permanent or transient. Errors that
// implement Permanenter decide for themselves; an *oauth2.RetrieveError is
// judged by its error code; everything else is transient.
func classify(err error, now time.Time) classification {
	var c classification
	var re *oauth2.RetrieveError
	hasRE := errors.As(err, &re)

	var oe OAuthErrorer
	if errors.As(err, &oe) {
		c.code, c.desc = oe.OAuthError()
	} else if hasRE {
		c.code, c.desc = re.ErrorCode, re.ErrorDescription
	}

	var p Permanenter
	if errors.As(err, &p) {
		c.permanent = p.Permanent()
	} else if hasRE {
		c.permanent = permanentCodes[re.ErrorCode]
	}

	var h RetryAfterHinter
	if errors.As(err, &h) {
		c.retryAfter = max(h.RetryAfterHint(), 0)
	} else if hasRE && re.Response != nil {
		c.retryAfter = parseRetryAfter(re.Response.Header.Get("Retry-After"), now)
	}
	return c
}

// parseRetryAfter reads an HTTP Retry-After value (RFC 9110 section 10.2.3):
// delay-seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		// Beyond a day the value is nonsense; clamp so the conversion cannot overflow.
		return time.Duration(min(n, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// storedReason words a permanent failure for Record.Reason: "code: description".
func storedReason(code, desc string) string {
	switch {
	case code != "" && desc != "":
		return code + ": " + desc
	case code != "":
		return code
	}
	return desc
}

// storedCodes are the error codes parseStoredReason splits off: those after
// which this package asks for a login, and the other standard ones a Source
// may call permanent (RFC 6749 sections 4.1.2.1 and 5.2, RFC 8628 section
// 3.5), so that a stored failure reads back with the code it was stored with.
var storedCodes = map[string]bool{
	"invalid_request":        true,
	"invalid_scope":          true,
	"unsupported_grant_type": true,
	"access_denied":          true,
	"expired_token":          true,
}

// parseStoredReason splits what storedReason wrote. Only known codes are
// split off, so a free-text reason stays whole.
func parseStoredReason(reason string) (code, desc string) {
	known := func(c string) bool { return permanentCodes[c] || storedCodes[c] }
	if known(reason) {
		return reason, ""
	}
	if c, d, ok := strings.Cut(reason, ": "); ok && known(c) {
		return c, d
	}
	return "", reason
}
