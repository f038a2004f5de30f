package tokens

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/mailkey/mailkey/internal/store"
)

// ErrNoToken is the cause of the *NeedsLoginError returned for an account
// that has never logged in (the store has no record for it).
var ErrNoToken = errors.New("no token yet")

// Permanenter is implemented by refresh errors that know whether retrying
// can help. Permanent() == true means no retry of the same request can
// succeed; the error code then says who has to act: a dead grant
// (invalid_grant, revoked consent) needs a new login, a rejected client
// (invalid_client, unauthorized_client, an expired client secret) or a
// refused scope needs a configuration fix and keeps the grant. When an error
// in the chain implements it, its answer decides.
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

// grantCodes are the RFC 6749 section 5.2 (and OpenID Connect Core section
// 3.1.2.6) error codes that say the grant is dead: only a new login helps.
// Microsoft answers a refresh with interaction_required or consent_required
// when consent was revoked or MFA is newly required.
var grantCodes = map[string]bool{
	"invalid_grant":        true,
	"interaction_required": true,
	"consent_required":     true,
	"login_required":       true,
}

// clientCodes are the error codes that blame the request's client or scope,
// not the user's grant (RFC 6749 section 5.2): invalid_client (its
// authentication failed: a wrong or expired secret or certificate),
// unauthorized_client (the registration may not use this grant) and
// invalid_scope (the refresh asked for more than was granted). A new login
// cannot fix them, so the grant is kept.
var clientCodes = map[string]bool{
	"invalid_client":      true,
	"unauthorized_client": true,
	"invalid_scope":       true,
}

// clientAADSTS are Microsoft Entra error codes about the app's own
// credentials or registration, whatever OAuth error code carries them
// (Entra's error code reference; the Azure SDK's service principal
// troubleshooting guide).
var clientAADSTS = map[string]bool{
	"AADSTS7000215": true, // invalid client secret: not the secret's value, or another app's
	"AADSTS7000222": true, // the client secret has expired
	"AADSTS7000218": true, // the request needs client_secret or client_assertion
	"AADSTS700025":  true, // public client: neither client_secret nor client_assertion allowed
	"AADSTS700027":  true, // the client assertion's signature is invalid (certificate not uploaded, or expired)
	"AADSTS700021":  true, // the client assertion's issuer is not the client_id
	"AADSTS700023":  true, // the client assertion's audience is not the token endpoint
	"AADSTS700024":  true, // the client assertion is outside its validity time range
	"AADSTS700016":  true, // no application with this client_id in the tenant
	"AADSTS7000112": true, // the application is disabled in the tenant
}

// aadstsRE is compiled on first use, not at the start of every mailkey command.
var aadstsRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\bAADSTS\d+\b`) })

// ClientProblem reports whether a token endpoint error (its RFC 6749 code
// and description) blames the client's credentials or registration, or the
// scope asked for, rather than the user's grant: a configuration problem
// that keeps the grant.
func ClientProblem(code, desc string) bool {
	if clientCodes[code] {
		return true
	}
	for _, c := range aadstsRE().FindAllString(desc, -1) {
		if clientAADSTS[c] {
			return true
		}
	}
	return false
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

// ClientConfigError says that the provider rejected the account's OAuth
// client (invalid_client, unauthorized_client, an expired or wrong client
// secret or certificate) or the scopes of a refresh (invalid_scope): the
// app's configuration is wrong, not the user's grant. Nothing is marked or
// deleted in the store; a still valid access token keeps being handed out,
// and the next request after the fix refreshes without a login.
type ClientConfigError struct {
	Account string
	// Code is the provider's error code (invalid_client, …), "" if unknown.
	Code string
	// Reason is the provider's description, with secrets removed.
	Reason string
	Err    error
}

func (e *ClientConfigError) Error() string {
	what := "the provider rejected the app's client credentials"
	if e.Code == "invalid_scope" {
		what = "the provider refused the scopes asked for"
	}
	return withProviderError(fmt.Sprintf("account %s: %s", e.Account, what), e.Code, e.Reason)
}

func (e *ClientConfigError) Unwrap() error { return e.Err }

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

// EndpointChangedError says that the account's token endpoint is no longer
// the one its grant was issued by: the tenant, the cloud, the issuer or
// token_url changed since the login. The refresh token is not sent to the
// new endpoint, which did not issue it (a refresh token belongs to the
// server that issued it, RFC 6749 section 6; Microsoft's to the tenant).
// Nothing is marked in the store: with the earlier configuration back the
// grant works again, and a new login replaces it.
type EndpointChangedError struct {
	Account string
	// Stored is the token endpoint the grant came from; Configured is the
	// one the account's configuration names now.
	Stored, Configured string
}

func (e *EndpointChangedError) Error() string {
	return fmt.Sprintf("account %s: the token endpoint changed since the login: the grant was issued by %s, the configuration now names %s; the refresh token is not sent to another endpoint",
		e.Account, e.Stored, e.Configured)
}

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

// class is what a refresh failure means for the account.
type class int

const (
	// classTransient: it may pass (network, timeout, 5xx, 429): retry.
	classTransient class = iota
	// classDeadGrant: the provider called the grant dead: a new login.
	classDeadGrant
	// classClient: the client or the scope was rejected: fix the
	// configuration; the grant is kept.
	classClient
)

// classification is what the manager needs to know about a refresh error.
type classification struct {
	class      class
	code, desc string
	retryAfter time.Duration
}

// classify sorts a refresh error into transient, dead grant or client
// configuration. Errors that implement Permanenter decide whether retrying
// can help; an *oauth2.RetrieveError is judged by its error code;
// everything else is transient. A permanent error is a client
// configuration problem when its code or a Microsoft AADSTS code in its
// description says so (ClientProblem), else a dead grant.
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

	var permanent bool
	var p Permanenter
	if errors.As(err, &p) {
		permanent = p.Permanent()
	} else if hasRE {
		permanent = grantCodes[re.ErrorCode] || clientCodes[re.ErrorCode]
	}
	switch {
	case !permanent:
		c.class = classTransient
	case ClientProblem(c.code, c.desc):
		c.class = classClient
	default:
		c.class = classDeadGrant
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

// storedCodes are the error codes parseStoredReason splits off besides
// grantCodes and clientCodes: the other standard ones a Source
// may call permanent (RFC 6749 sections 4.1.2.1 and 5.2, RFC 8628 section
// 3.5), so that a stored failure reads back with the code it was stored with.
var storedCodes = map[string]bool{
	"invalid_request":        true,
	"unsupported_grant_type": true,
	"access_denied":          true,
	"expired_token":          true,
}

// parseStoredReason splits what storedReason wrote. Only known codes are
// split off, so a free-text reason stays whole.
func parseStoredReason(reason string) (code, desc string) {
	known := func(c string) bool { return grantCodes[c] || clientCodes[c] || storedCodes[c] }
	if known(reason) {
		return reason, ""
	}
	if c, d, ok := strings.Cut(reason, ": "); ok && known(c) {
		return c, d
	}
	return "", reason
}

// NeedsLogin reports whether rec's "needs login" mark stands for a dead
// grant. Older versions also marked accounts after a client configuration
// error (invalid_client, an expired client secret, invalid_scope); such a
// mark is not a dead grant: the manager asks the provider again.
func NeedsLogin(rec *store.Record) bool {
	return rec.NeedsLogin && !ClientProblem(parseStoredReason(rec.Reason))
}
