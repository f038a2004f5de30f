package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mailkey/mailkey/internal/account"
	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/proxy"
	"github.com/mailkey/mailkey/internal/sasl"
	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/internal/tokens"
	"github.com/mailkey/mailkey/internal/upstream"
)

// Tokens hands out access tokens; *tokens.Manager implements it.
type Tokens interface {
	Get(ctx context.Context, account string) (*store.Record, error)
	ForceRefresh(ctx context.Context, account, stale string) (*store.Record, error)
	RefreshDue(ctx context.Context, account string, within time.Duration) (*store.Record, error)
}

// Dialer opens authenticated upstream sessions for the proxy: it
// implements proxy.Dialer.
type Dialer struct {
	accounts map[string]*config.Account
	tls      map[string]*tls.Config // per account: system roots + ca_file
	tokens   Tokens
	log      *slog.Logger
	m        *metrics
	// refreshed, when set, hears of every forced refresh.
	refreshed func(account string)
	// command is Config.Command.
	command func(step Step, account string) string
}

// run words "(run COMMAND)" for a message to a mail client, after what
// went wrong and before; without Config.Command it is what went wrong.
func run(command func(Step, string) string, what string, step Step, account string) string {
	if command == nil {
		if what == "" {
			return ""
		}
		return " (" + what + ")"
	}
	if what != "" {
		what += "; "
	}
	return " (" + what + "run " + command(step, account) + ")"
}

var _ proxy.Dialer = (*Dialer)(nil)

// NewDialer returns a Dialer for accounts. It reads each account's
// ca_file now.
func NewDialer(accounts []*config.Account, tok Tokens, log *slog.Logger) (*Dialer, error) {
	return newDialer(accounts, tok, log, newMetrics())
}

func newDialer(accounts []*config.Account, tok Tokens, log *slog.Logger, m *metrics) (*Dialer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dialer{accounts: map[string]*config.Account{}, tls: map[string]*tls.Config{}, tokens: tok, log: log, m: m}
	for _, a := range accounts {
		tc, err := account.TLSConfig(a.CAFile, "")
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", a.Name, err)
		}
		d.accounts[a.Name] = a
		d.tls[a.Name] = tc
	}
	return d, nil
}

// protocolOf maps the proxy's protocol names to the provider's.
func protocolOf(p string) provider.Protocol {
	switch p {
	case proxy.IMAP:
		return provider.IMAP
	case proxy.POP3:
		return provider.POP3
	}
	return provider.SMTP
}

// Dial implements proxy.Dialer: a token from the lifecycle manager, then
// the account's server logged in to by package upstream. When the server
// refuses the token, the manager replaces it (ForceRefresh) and upstream
// tries once more on a new connection.
func (d *Dialer) Dial(ctx context.Context, req proxy.UpstreamRequest) (*proxy.Upstream, error) {
	a, ok := d.accounts[req.Account]
	if !ok {
		return nil, &proxy.UpstreamError{Message: "mailkey has no account " + req.Account, Err: fmt.Errorf("%w: unknown account %q", proxy.ErrUpstreamAuth, req.Account)}
	}
	srv, ok := a.Servers[protocolOf(req.Protocol)]
	if !ok {
		return nil, &proxy.UpstreamError{
			Message: fmt.Sprintf("account %s has no %s server configured", a.Name, req.Protocol),
			Err:     fmt.Errorf("%w: account %s has no %s server", proxy.ErrUpstreamAuth, a.Name, req.Protocol),
		}
	}
	rec, err := d.tokens.Get(ctx, a.Name)
	if err != nil {
		return nil, d.tokenFailure(a.Name, err)
	}
	d.m.dials.WithLabelValues(req.Protocol).Inc()
	s, err := upstream.For(protocolOf(req.Protocol))(ctx, &upstream.Options{
		Server: srv, TLS: d.tls[a.Name], User: a.User(), SASL: a.SASL, EHLO: req.EHLO,
		Token: func(context.Context) (string, error) { return rec.AccessToken, nil },
		Retry: func(_ context.Context, refused *upstream.ReplyError) bool {
			d.log.Warn("upstream refused the token, refreshing it", "conn", req.ConnID, "account", a.Name,
				"protocol", req.Protocol, "server", srv.Host, "reply", refused.Error())
			return true
		},
		Refresh: func(ctx context.Context, stale string) (string, error) {
			d.m.forced.WithLabelValues(req.Protocol).Inc()
			rec, err := d.tokens.ForceRefresh(ctx, a.Name, stale)
			if err != nil {
				return "", err
			}
			if d.refreshed != nil {
				d.refreshed(a.Name)
			}
			d.m.dials.WithLabelValues(req.Protocol).Inc() // upstream dials again with it
			return rec.AccessToken, nil
		},
	})
	if err != nil {
		return nil, d.failure(a, srv, req, err)
	}
	d.m.logins.WithLabelValues(req.Protocol, "ok").Inc()
	d.log.Debug("upstream login", "conn", req.ConnID, "account", a.Name, "protocol", req.Protocol,
		"server", srv.Host, "mechanism", s.Mechanism)
	return &proxy.Upstream{Conn: s.Conn, Reader: s.Reader, Capabilities: s.Capabilities}, nil
}

// failure words a failed upstream login for the mail client and counts it.
func (d *Dialer) failure(a *config.Account, srv provider.Server, req proxy.UpstreamRequest, err error) error {
	var ue *upstream.Error
	if errors.As(err, &ue) && ue.Phase == upstream.PhaseToken {
		return d.tokenFailure(a.Name, err)
	}
	var re *upstream.ReplyError
	if errors.As(err, &re) && re.Refused {
		d.m.logins.WithLabelValues(req.Protocol, "refused").Inc()
		return &proxy.UpstreamError{
			Message: fmt.Sprintf("mailkey could not log in to %s for %s: the server refused the token", srv.Host, a.Name) + run(d.command, "", StepTest, a.Name),
			Err:     fmt.Errorf("%w: %s: %w", proxy.ErrUpstreamAuth, srv.Host, err),
		}
	}
	d.m.logins.WithLabelValues(req.Protocol, "error").Inc()
	step := ""
	var nm *sasl.NoMechanismError
	switch {
	case re != nil && !re.Temporary:
		step = re.Step
	case errors.As(err, &nm):
		step = "capability"
	case errors.Is(err, upstream.ErrNoSTARTTLS):
		step = "starttls"
	}
	msg := fmt.Sprintf("mailkey could not reach %s for %s, try again later", srv.Host, a.Name)
	if step != "" {
		msg = fmt.Sprintf("mailkey could not log in to %s for %s: %s failed", srv.Host, a.Name, step) + run(d.command, "", StepTest, a.Name)
	}
	return &proxy.UpstreamError{Message: msg, Err: fmt.Errorf("%s: %w", srv.Host, err)}
}

// tokenFailure words a lifecycle manager error for the mail client.
func (d *Dialer) tokenFailure(name string, err error) error {
	var nl *tokens.NeedsLoginError
	if errors.As(err, &nl) {
		return &proxy.UpstreamError{
			Message: "mailkey has no valid token for " + name + run(d.command, "", StepLogin, name),
			Err:     fmt.Errorf("%w: %w", proxy.ErrUpstreamAuth, err),
		}
	}
	var ce *tokens.ClientConfigError
	if errors.As(err, &ce) {
		return &proxy.UpstreamError{
			Message: "the provider rejected mailkey's client for " + name + run(d.command, "check its client_secret", StepTest, name),
			Err:     fmt.Errorf("%w: %w", proxy.ErrUpstreamAuth, err),
		}
	}
	var corrupt *store.CorruptError
	if errors.As(err, &corrupt) {
		return &proxy.UpstreamError{
			Message: "mailkey cannot read the stored token for " + name + run(d.command, "", StepStatus, name),
			Err:     fmt.Errorf("%w: %w", proxy.ErrLocalFault, err),
		}
	}
	var ec *tokens.EndpointChangedError
	if errors.As(err, &ec) {
		return &proxy.UpstreamError{
			Message: "mailkey's login for " + name + " came from another token endpoint than the configured one" + run(d.command, "", StepLogin, name),
			Err:     fmt.Errorf("%w: %w", proxy.ErrUpstreamAuth, err),
		}
	}
	var rf *tokens.RefusedError
	if errors.As(err, &rf) {
		return &proxy.UpstreamError{
			Message: "the provider refused a token for " + name + run(d.command, "", StepTest, name),
			Err:     fmt.Errorf("%w: %w", proxy.ErrUpstreamAuth, err),
		}
	}
	return &proxy.UpstreamError{
		Message: fmt.Sprintf("mailkey could not get a token for %s, try again later", name),
		Err:     err,
	}
}
