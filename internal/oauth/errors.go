package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/oauth2"
)

// Sentinel errors. An *Error wraps one of them when it applies, so callers can
// use errors.Is on whatever a flow returns.
var (
	// ErrTimeout: the browser login did not complete within the allowed time.
	ErrTimeout = errors.New("timed out waiting for the login to complete")
	// ErrAccessDenied: the user (or an administrator's policy) refused the request.
	ErrAccessDenied = errors.New("access denied")
	// ErrExpiredToken: the device code expired before the user approved it.
	ErrExpiredToken = errors.New("the device code expired before it was approved")
	// ErrStateMismatch: a pasted redirect URL belongs to another login attempt.
	ErrStateMismatch = errors.New("state in the redirect does not match this login")
	// ErrIssuerMismatch: the authorization response names another issuer (RFC 9207).
	ErrIssuerMismatch = errors.New("authorization response comes from an unexpected issuer")
	// ErrMissingIssuer: RequireIssuerParam is set and the response has no iss (RFC 9207).
	ErrMissingIssuer = errors.New("authorization response has no iss parameter")
	// ErrNoCode: the redirect carried neither a code nor an error.
	ErrNoCode = errors.New("redirect has no authorization code")
	// ErrInsecureEndpoint: an endpoint is neither https nor on a loopback host.
	ErrInsecureEndpoint = errors.New("endpoint must use https (plain http only on loopback)")
	// ErrNoRevocation: the provider has no revocation endpoint configured.
	ErrNoRevocation = errors.New("provider has no revocation endpoint")
	// ErrNoIssuer: ID token verification needs Client.Issuer.
	ErrNoIssuer = errors.New("no issuer configured for id token verification")
	// ErrNonceMismatch: the ID token does not carry the nonce of this
	// login (OpenID Connect Core §3.1.3.7 step 11): it was issued for
	// another authorization request, or replayed.
	ErrNonceMismatch = errors.New("id token does not carry the nonce of this login")
	// ErrMissingEndpoint: a flow needs an endpoint URL that is not configured.
	ErrMissingEndpoint = errors.New("endpoint url not configured")
)

// Kind says what retrying can achieve.
type Kind int

const (
	// Other: a local or protocol problem (configuration, cancellation, a
	// malformed response). Retrying as-is will not help, but nothing says the
	// grant itself is dead.
	Other Kind = iota
	// Permanent: the provider refused the grant or the client (invalid_grant,
	// invalid_client, unauthorized_client, invalid_scope, access_denied, …).
	// Retrying the same request will not help; the code says who must act:
	// the user logs in again after invalid_grant, while invalid_client,
	// unauthorized_client and invalid_scope call for a fix of the client's
	// configuration (its secret, certificate or scopes) and leave the grant
	// alive (internal/tokens sorts them).
	Permanent
	// Transient: network failure, timeout, 5xx, 429 or the provider's
	// temporarily_unavailable/server_error. Retry later (honour RetryAfter).
	Transient
)

func (k Kind) String() string {
	switch k {
	case Permanent:
		return "permanent"
	case Transient:
		return "transient"
	}
	return "other"
}

// Error is the error type of this package for everything that went wrong
// talking to a provider. Its text holds the provider's error code and
// description, never a token, code, verifier, secret or response body.
type Error struct {
	Op          string        // what was attempted: "token exchange", "refresh", "revoke", …
	Kind        Kind          // what retrying can achieve
	Code        string        // RFC 6749 §5.2 error code: invalid_grant, …; empty if none
	Description string        // provider's error_description, whitespace collapsed, secrets redacted
	Status      int           // HTTP status, 0 if no response
	RetryAfter  time.Duration // from a Retry-After header, 0 if none
	AADSTS      string        // Microsoft error code such as "AADSTS70043", if any
	Err         error         // underlying cause (a sentinel of this package or a network error)
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	switch {
	case e.Code != "":
		b.WriteString(e.Code)
		if e.Description != "" {
			b.WriteString(": ")
			b.WriteString(strings.TrimRight(e.Description, ". "))
		} else if e.AADSTS != "" {
			b.WriteString(": ")
			b.WriteString(e.AADSTS)
		}
	case e.Err != nil:
		b.WriteString(e.Err.Error())
		if e.Status != 0 {
			b.WriteString(" (http " + strconv.Itoa(e.Status) + ")")
		}
	case e.Status != 0:
		b.WriteString("http " + strconv.Itoa(e.Status) + " " + strings.ToLower(http.StatusText(e.Status)))
	default:
		b.WriteString("failed")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether retrying cannot succeed (see Kind).
func (e *Error) Permanent() bool { return e != nil && e.Kind == Permanent }

// Temporary reports whether a later retry may succeed (see Kind).
func (e *Error) Temporary() bool { return e != nil && e.Kind == Transient }

// Classify returns err as an *Error, classifying errors that are not one
// already (oauth2.RetrieveError, network errors, context errors). It returns
// nil for nil. The result never carries a response body.
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return classify("", err, nil)
}

// classify turns any error into an *Error, redacting secrets from every text
// it keeps.
func classify(op string, err error, secrets []string) *Error {
	var e *Error
	if errors.As(err, &e) {
		if op != "" && e.Op == "" {
			e.Op = op
		}
		return e
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		var status int
		var header http.Header
		if re.Response != nil {
			status, header = re.Response.StatusCode, re.Response.Header
		}
		out := errorFromBody(op, status, header, re.Body, secrets)
		if out.Code == "" && re.ErrorCode != "" {
			out.Code = re.ErrorCode
			out.Description = redact(collapse(re.ErrorDescription), secrets)
			out.AADSTS = aadsts(out.Description)
			out.Kind, out.Err = kindOf(out.Code, status)
		}
		return out
	}
	out := &Error{Op: op, Err: sanitize(err, secrets)}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, ErrInsecureEndpoint):
		out.Kind = Other
	case isNetwork(err):
		out.Kind = Transient
	}
	return out
}

func isNetwork(err error) bool {
	var ne net.Error
	var ue *url.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &ue) || errors.As(err, &oe) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// errorFromBody builds an *Error from an error response (RFC 6749 §5.2,
// RFC 7009 §2.2.1, RFC 8628 §3.5). The body is parsed, never kept.
func errorFromBody(op string, status int, header http.Header, body []byte, secrets []string) *Error {
	e := &Error{Op: op, Status: status}
	var fields struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		ErrorCodes  []int  `json:"error_codes"` // Microsoft
	}
	ct, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	if ct == "application/x-www-form-urlencoded" || ct == "text/plain" {
		if v, err := url.ParseQuery(string(body)); err == nil {
			fields.Error, fields.Description = v.Get("error"), v.Get("error_description")
		}
	} else {
		_ = json.Unmarshal(body, &fields)
	}
	if validCode(fields.Error) {
		e.Code = fields.Error
		e.Description = redact(collapse(fields.Description), secrets)
	}
	e.AADSTS = aadsts(e.Description)
	if e.AADSTS == "" && len(fields.ErrorCodes) > 0 {
		e.AADSTS = "AADSTS" + strconv.Itoa(fields.ErrorCodes[0])
	}
	e.Kind, e.Err = kindOf(e.Code, status)
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable || e.Kind == Transient {
		e.RetryAfter = retryAfter(header.Get("Retry-After"), time.Now())
	}
	return e
}

// validCode accepts RFC 6749 error codes (NQSCHAR, here kept to a sane
// subset) so an HTML page or junk is never mistaken for one.
func validCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// kindOf classifies a provider error code and HTTP status.
func kindOf(code string, status int) (Kind, error) {
	switch code {
	case "access_denied":
		return Permanent, ErrAccessDenied
	case "expired_token":
		return Permanent, ErrExpiredToken
	case "temporarily_unavailable", "server_error":
		return Transient, nil
	case "":
	default:
		// invalid_grant, invalid_client, unauthorized_client, invalid_scope,
		// invalid_request, unsupported_grant_type, interaction_required,
		// consent_required, …: the same request will fail again.
		if status >= 500 {
			return Transient, nil
		}
		return Permanent, nil
	}
	switch {
	case status == http.StatusTooManyRequests, status == http.StatusRequestTimeout, status >= 500:
		return Transient, nil
	case status >= 400:
		return Permanent, nil
	}
	return Other, nil
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP-date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		const maxRetryAfter = 24 * time.Hour // bound hostile values
		d := time.Duration(n) * time.Second
		if n > int64(maxRetryAfter/time.Second) {
			d = maxRetryAfter
		}
		return d
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// aadstsRE is compiled on first use, not at the start of every mailkey command.
var aadstsRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\bAADSTS\d+\b`) })

func aadsts(desc string) string { return aadstsRE().FindString(desc) }

// collapse folds the multi-line descriptions some providers send into one line
// and bounds their length.
func collapse(s string) string {
	const maxDescription = 512 // enough for Microsoft's trace/correlation ids
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxDescription {
		s = s[:maxDescription] + "…"
	}
	return s
}

const redacted = "[redacted]"

// redact removes every secret value from s. Providers have been seen to echo
// request parameters in error descriptions.
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, redacted)
		}
	}
	return s
}

// redactedError keeps the chain of an error whose text held a secret.
type redactedError struct {
	msg string
	err error
}

func (r *redactedError) Error() string { return r.msg }
func (r *redactedError) Unwrap() error { return r.err }

// sanitize returns err with secrets removed from its text, and with the query
// of any URL in a *url.Error dropped.
func sanitize(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		u := ue.URL
		if p, perr := url.Parse(u); perr == nil {
			p.RawQuery, p.Fragment, p.User = "", "", nil
			u = p.String()
		}
		msg = strings.ToLower(ue.Op) + " " + u + ": " + ue.Err.Error()
	}
	clean := redact(msg, secrets)
	if clean == err.Error() {
		return err
	}
	return &redactedError{msg: clean, err: err}
}

// RetryAfterHint is the provider's Retry-After, for the token manager's backoff.
func (e *Error) RetryAfterHint() time.Duration { return e.RetryAfter }

// OAuthError returns the RFC 6749 error code and the (redacted) description.
func (e *Error) OAuthError() (code, description string) { return e.Code, e.Description }
