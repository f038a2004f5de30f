package proxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
)

// Protocol names, as used in [UpstreamRequest.Protocol] and in logs.
const (
	IMAP = "imap"
	POP3 = "pop3"
	SMTP = "smtp"
)

// Authenticator checks local credentials (app passwords).
//
// Authenticate returns the account the login belongs to, and the label of
// the credential that matched ("" when it has none). A wrong password or
// an unknown login must be reported with an error wrapping
// [ErrBadCredentials]; any other error is treated as a temporary failure
// (for example an unreadable store) and the client is told to retry later.
// Errors must not contain the password.
type Authenticator interface {
	Authenticate(ctx context.Context, login, password string, remote net.Addr) (account, label string, err error)
}

// Login results of a LoginEvent.
const (
	LoginOK          = "ok"
	LoginFailed      = "failed"
	LoginRateLimited = "rate_limited"
)

// A LoginEvent is one local login attempt, for an audit trail: who tried,
// from where, and what came of it. It never holds the password.
type LoginEvent struct {
	Result   string // LoginOK, LoginFailed or LoginRateLimited
	Protocol string
	Remote   string
	// Login is the user name the client sent, cleaned for logs.
	Login string
	// Account and Label are the account and credential that matched
	// (LoginOK only).
	Account, Label string
}

// Dialer opens an authenticated upstream connection for an account.
//
// Dial returns the connection positioned right after the upstream's
// successful authentication; ctx bounds the dial and the login only, not
// the returned connection. It must set no deadline it does not clear. Failures should wrap [ErrUpstreamAuth] when the
// upstream refused the credentials (an expired grant, a disabled mailbox);
// any other error is a temporary failure. An error that implements
// [ClientMessager] chooses the text the client sees; it must be safe to show
// (no token, no secret) and it is logged.
type Dialer interface {
	Dial(ctx context.Context, req UpstreamRequest) (*Upstream, error)
}

// UpstreamRequest says which upstream session a client needs.
type UpstreamRequest struct {
	Protocol string // IMAP, POP3 or SMTP
	Account  string // as returned by the Authenticator
	// EHLO is, for SMTP, the client's last EHLO or HELO command line exactly
	// as it sent it, without the line ending (for example "EHLO laptop.local").
	// The upstream session must have been greeted with it before AUTH.
	EHLO   string
	ConnID string // the client session's id, for logs
}

// Upstream is an authenticated upstream connection.
type Upstream struct {
	Conn net.Conn
	// Reader, when not nil, reads from Conn and may already hold bytes the
	// upstream sent after its authentication reply; they are relayed to the
	// client first.
	Reader *bufio.Reader
	// Capabilities are, for IMAP, the upstream's capabilities after login
	// (from its tagged OK response code or a CAPABILITY command); the client
	// receives them in its tagged OK [CAPABILITY …]. When empty the client
	// gets a plain OK and asks for them itself. Unused for POP3 and SMTP.
	Capabilities []string
}

// ClientMessager is implemented by errors that carry a message that is safe
// to show the mail client.
type ClientMessager interface {
	ClientMessage() string
}

var (
	// ErrBadCredentials reports a wrong app password or an unknown login.
	ErrBadCredentials = errors.New("invalid credentials")
	// ErrRateLimited reports a login refused, without checking the password,
	// because its source address failed too often.
	ErrRateLimited = errors.New("too many failed logins from this address")
	// ErrUpstreamAuth reports that the upstream server refused to
	// authenticate the account.
	ErrUpstreamAuth = errors.New("upstream authentication failed")
	// ErrLocalFault reports a failure that trying again will not mend:
	// mailkey's own data for the login (a token record, the app password
	// file) cannot be read, and a person has to fix it.
	ErrLocalFault = errors.New("mailkey's own data cannot be read")
	// ErrLineTooLong reports a client line longer than Limits.MaxLine.
	ErrLineTooLong = errors.New("line too long")
	// ErrInjection reports bytes pipelined after STARTTLS/STLS in plaintext
	// (RFC 3207 §6).
	ErrInjection = errors.New("plaintext pipelined after starttls")
	// ErrTooManyBadCommands reports a client that sent too many invalid
	// commands before login.
	ErrTooManyBadCommands = errors.New("too many invalid commands")
	// ErrServerClosed is returned by Serve after Shutdown.
	ErrServerClosed = errors.New("proxy: server closed")
)

// UpstreamError is a convenience for Dialer implementations: it carries a
// client-safe message and the underlying error.
type UpstreamError struct {
	Message string // shown to the client; must not hold secrets
	Err     error  // wrap ErrUpstreamAuth for an authentication refusal
}

func (e *UpstreamError) Error() string {
	if e.Err == nil {
		return e.Message
	}
	return e.Err.Error()
}

func (e *UpstreamError) Unwrap() error { return e.Err }

// ClientMessage implements ClientMessager.
func (e *UpstreamError) ClientMessage() string { return e.Message }

// Failure classifies a failed login for the client's reply.
type Failure struct {
	// Auth is true when the credentials were refused (locally or by the
	// upstream), false for a temporary failure the client may retry.
	Auth bool
	// Local is true for a fault of mailkey's own data (ErrLocalFault): not
	// the credentials, and not worth retrying until a person fixes it.
	Local bool
	// Message is a short, single-line, client-safe text.
	Message string
}

// maxClientMessage bounds texts taken from errors into protocol replies.
const maxClientMessage = 200

// Classify turns an error from Session.Login into the reply a protocol
// should give.
func Classify(err error) Failure {
	var f Failure
	switch {
	case errors.Is(err, ErrBadCredentials):
		return Failure{Auth: true, Message: "Authentication failed"}
	case errors.Is(err, ErrRateLimited):
		return Failure{Message: "Too many failed logins, try again later"}
	case errors.Is(err, ErrLocalFault):
		f = Failure{Local: true, Message: "mailkey cannot read its own data for this login; its administrator has to fix it"}
	case errors.Is(err, ErrUpstreamAuth):
		f = Failure{Auth: true, Message: "Upstream server refused the account's authorization"}
	default:
		f = Failure{Message: "Mail server temporarily unavailable, try again later"}
	}
	var cm ClientMessager
	if errors.As(err, &cm) {
		if m := sanitizeText(cm.ClientMessage()); m != "" {
			f.Message = m
		}
	}
	return f
}

// sanitizeText makes s safe to put in one protocol reply line: control
// characters become spaces, brackets are dropped (they would open response
// codes) and the length is bounded.
func sanitizeText(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= maxClientMessage {
			break
		}
		switch {
		case r < 0x20 || r == 0x7f:
			b.WriteByte(' ')
		case r == '[' || r == ']':
		default:
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(b.String())
}
