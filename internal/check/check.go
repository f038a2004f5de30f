package check

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"time"

	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/store"
)

// Timeouts. DefaultTimeout bounds one protocol's whole session, from the
// dial to the last command; connectTimeout bounds resolving and
// connecting, where a firewall that drops packets would otherwise make
// the user wait the longest.
const (
	DefaultTimeout = 60 * time.Second
	connectTimeout = 15 * time.Second
)

// Step names, in checklist order.
const (
	StepConnect      = "connect"
	StepTLS          = "tls"
	StepCapabilities = "capabilities"
	StepToken        = "token"
	StepAuthenticate = "authenticate"
	StepRetry        = "authenticate again" // with a refreshed token
	StepCommand      = "command"
	StepSend         = "send"
)

// Status is the outcome of a step.
type Status string

const (
	StatusOK   Status = "ok"
	StatusWarn Status = "warn" // passed, with something to know
	StatusFail Status = "fail"
	StatusSkip Status = "skip" // not run: an earlier step failed
)

// Step is one line of a checklist.
type Step struct {
	Name      string        `json:"name"`
	Status    Status        `json:"status"`
	Detail    string        `json:"detail,omitempty"`
	Duration  time.Duration `json:"-"`
	Diagnosis *Diagnosis    `json:"diagnosis,omitempty"`
}

// MarshalJSON adds the duration in milliseconds.
func (s Step) MarshalJSON() ([]byte, error) {
	type plain Step
	return json.Marshal(struct {
		plain
		DurationMS float64 `json:"duration_ms"`
	}{plain(s), float64(s.Duration.Microseconds()) / 1000})
}

// Result is the checklist of one protocol.
type Result struct {
	Protocol provider.Protocol `json:"protocol"`
	Server   string            `json:"server"`
	Passed   bool              `json:"passed"`
	Steps    []Step            `json:"steps"`
}

// Failed returns the first failed step, or nil.
func (r *Result) Failed() *Step {
	for i := range r.Steps {
		if r.Steps[i].Status == StatusFail {
			return &r.Steps[i]
		}
	}
	return nil
}

// Report is the outcome of Run.
type Report struct {
	Account string    `json:"account"`
	Email   string    `json:"email"`
	Mailbox string    `json:"mailbox,omitempty"`
	Passed  bool      `json:"passed"`
	Results []*Result `json:"protocols"`
	// Warnings are deadlines ahead of the account (a secret or certificate
	// that expires, a refresh token that dies unused): the test passes,
	// but it will not for long.
	Warnings []string `json:"warnings,omitempty"`
}

// Target is the account to test. Token is required; the other functions
// are optional.
type Target struct {
	Account string
	Email   string // who signs in; the SASL user unless Mailbox is set
	// Mailbox is a shared or delegated mailbox that Email's token opens:
	// the SASL user when set.
	Mailbox  string
	Provider string // preset name, for provider-specific diagnoses
	// Flow is the account's flow: "" (a person logs in), "client_credentials"
	// or "service_account".
	Flow    string
	Servers map[provider.Protocol]provider.Server
	// TLSConfig returns the verified client configuration for a server
	// name (the account's ca_file included). Nil means system roots.
	TLSConfig func(serverName string) (*tls.Config, error)
	// SASL is the preferred mechanism: "xoauth2", "oauthbearer" or "".
	SASL string
	// Scopes lists the scopes each protocol needs, when known (presets).
	Scopes map[provider.Protocol][]string

	// Token returns a valid token through the lifecycle manager.
	Token func(ctx context.Context) (*store.Record, error)
	// ForceRefresh replaces a token a server rejected (stale).
	ForceRefresh func(ctx context.Context, stale string) (*store.Record, error)
	// Introspect asks the provider about a token (RFC 7662); see
	// Introspector. It may return ErrNoIntrospection.
	Introspect func(ctx context.Context, token string) (*Introspection, error)
}

// user is the SASL user: the mailbox, else the signed-in address.
func (t *Target) user() string {
	if t.Mailbox != "" {
		return t.Mailbox
	}
	return t.Email
}

// Options tune Run. The zero value tests every protocol with a server.
type Options struct {
	// Protocols to test; empty means every protocol in Target.Servers.
	Protocols []provider.Protocol
	// SendTo, when set, makes the SMTP check send a real test message
	// to this address.
	SendTo string
	// Timeout bounds one protocol's session; 0 means DefaultTimeout.
	Timeout time.Duration
	// Transcript, when set, receives each protocol's exchange, one line
	// per line on the wire, with the SASL exchange redacted.
	Transcript io.Writer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ErrNoServer is the detail of a protocol the account has no server for.
var ErrNoServer = errors.New("the account has no server for this protocol")

// Run tests each protocol in turn and returns the report. It does
// network I/O; ctx cancels it. Run never fails as a whole: what went
// wrong is in the report.
func Run(ctx context.Context, t Target, opts Options) *Report {
	r := &runner{t: t, opts: opts}
	if r.opts.Now == nil {
		r.opts.Now = time.Now
	}
	if r.opts.Timeout <= 0 {
		r.opts.Timeout = DefaultTimeout
	}
	protos := opts.Protocols
	if len(protos) == 0 {
		for _, p := range provider.Protocols {
			if _, ok := t.Servers[p]; ok {
				protos = append(protos, p)
			}
		}
	}
	rep := &Report{Account: t.Account, Email: t.Email, Mailbox: t.Mailbox, Passed: len(protos) > 0}
	for _, p := range provider.Protocols {
		if !slices.Contains(protos, p) {
			continue
		}
		res := r.protocol(ctx, p)
		rep.Results = append(rep.Results, res)
		rep.Passed = rep.Passed && res.Passed
	}
	return rep
}
