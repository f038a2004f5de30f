package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/mailkey/mailkey/internal/check"
	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/store"
)

type testCmd struct {
	Account string        `arg:"" help:"The account to test."`
	IMAP    bool          `name:"imap" help:"Test IMAP (default: every protocol the account is used for)."`
	POP3    bool          `name:"pop3" help:"Test POP3."`
	SMTP    bool          `name:"smtp" help:"Test SMTP submission."`
	SendTo  string        `name:"send-to" help:"Also send a real test message through SMTP to this address." placeholder:"ADDR"`
	JSON    bool          `help:"Print the whole checklist as JSON."`
	Verbose bool          `short:"v" help:"Print the protocol transcript on stderr (the SASL exchange shown as <redacted>)."`
	Timeout time.Duration `help:"Time limit for each protocol's session." default:"60s"`
}

func (c *testCmd) Run(e *env) error {
	a, err := e.openAccountDeferred(c.Account)
	if err != nil {
		return err
	}
	protos, err := c.protocols(a.conf)
	if err != nil {
		return err
	}
	target := c.target(e, a)
	opts := check.Options{Protocols: protos, SendTo: c.SendTo, Timeout: c.Timeout}
	if c.Verbose {
		opts.Transcript = &linePrefixer{w: e.stderr, prefix: "mailkey: "}
	}
	rep := check.Run(e.ctx, target, opts)
	rec, _ := a.st.Get(e.ctx, a.conf.Name) // nil when there is none, or it cannot be read
	rep.Warnings = earlyWarnings(a.conf, rec, time.Now())
	if c.JSON {
		if err := e.writeJSON(rep); err != nil {
			return err
		}
	} else {
		writeChecklist(e.stdout, rep)
	}
	return testError(rep)
}

// protocols picks what to test: the flags, else every server the
// account has.
func (c *testCmd) protocols(conf *config.Account) ([]provider.Protocol, error) {
	var want []provider.Protocol
	for _, p := range []struct {
		on    bool
		proto provider.Protocol
	}{{c.IMAP, provider.IMAP}, {c.POP3, provider.POP3}, {c.SMTP, provider.SMTP}} {
		if p.on {
			want = append(want, p.proto)
		}
	}
	if c.SendTo != "" && len(want) > 0 && !slices.Contains(want, provider.SMTP) {
		return nil, errorf("add --smtp, or leave out --imap and --pop3", "--send-to sends through SMTP, which is not being tested")
	}
	if len(want) == 0 {
		// What the account is used for (its token's scopes follow it),
		// else every server it has.
		for _, p := range provider.Protocols {
			if _, ok := conf.Servers[p]; ok && (len(conf.Protocols) == 0 || slices.Contains(conf.Protocols, p)) {
				want = append(want, p)
			}
		}
	}
	if len(want) == 0 {
		return nil, errorf(fmt.Sprintf("mailkey add %s --imap imaps://HOST:993 (or --pop3, --smtp)", conf.Name),
			"account %s has no mail server to test", conf.Name)
	}
	return want, nil
}

// target describes the account to package check. Nothing here needs the
// network: the provider's discovery runs only if a token must be fetched
// or introspected, so a valid stored token is tested while the provider
// is down.
func (c *testCmd) target(e *env, a *acct) check.Target {
	conf := a.conf
	t := check.Target{
		Account:   conf.Name,
		Email:     conf.Email,
		Mailbox:   conf.Mailbox,
		Provider:  conf.Provider,
		Flow:      conf.Flow,
		Servers:   conf.Servers,
		SASL:      conf.SASL,
		TLSConfig: a.acc.TLSConfig,
		Token:     a.token,
		ForceRefresh: func(ctx context.Context, stale string) (*store.Record, error) {
			rec, err := a.mgr.ForceRefresh(ctx, conf.Name, stale)
			if err != nil {
				return nil, tokenError(conf, err)
			}
			return rec, nil
		},
		Introspect: func(ctx context.Context, token string) (*check.Introspection, error) {
			if err := a.resolve(ctx); err != nil {
				return nil, err
			}
			if a.acc.R().IntrospectURL == "" {
				return nil, check.ErrNoIntrospection
			}
			secret, err := a.acc.R().Secret(ctx)
			if err != nil {
				return nil, err
			}
			in := &check.Introspector{URL: a.acc.R().IntrospectURL, ClientID: a.acc.R().ClientID, ClientSecret: secret, HTTPClient: a.acc.HTTP()}
			return in.Introspect(ctx, token)
		},
	}
	if p, err := provider.Lookup(conf.Provider); err == nil {
		if t.SASL == "" {
			t.SASL = p.PreferSASL
		}
		// App-only tokens carry roles, not the delegated scopes.
		if conf.Provider != provider.Generic && conf.Flow == config.FlowInteractive {
			t.Scopes = p.Scopes
		}
	}
	return t
}

// writeChecklist prints the report for people: one line per step, and
// the cause and fix under each failure or warning.
func writeChecklist(w io.Writer, rep *check.Report) {
	if rep.Mailbox != "" {
		fmt.Fprintf(w, "%s (signed in as %s, opening shared mailbox %s)\n", rep.Account, rep.Email, rep.Mailbox)
	} else {
		fmt.Fprintf(w, "%s (%s)\n", rep.Account, rep.Email)
	}
	for _, res := range rep.Results {
		fmt.Fprintf(w, "\n%s  %s\n", strings.ToUpper(string(res.Protocol)), res.Server)
		for _, s := range res.Steps {
			dur := ""
			if s.Status != check.StatusSkip {
				dur = formatDuration(s.Duration)
			}
			detail := s.Detail
			if s.Status == check.StatusSkip {
				detail = "not run"
			}
			fmt.Fprintf(w, "  %s %-18s %7s  %s\n", statusMark(s.Status), s.Name, dur, detail)
			if d := s.Diagnosis; d != nil && s.Status != check.StatusOK {
				fmt.Fprintf(w, "      cause: %s\n", d.Cause)
				fmt.Fprintf(w, "      fix:   %s\n", d.Fix)
			}
		}
	}
	if len(rep.Warnings) > 0 {
		fmt.Fprintln(w)
	}
	for _, warning := range rep.Warnings {
		fmt.Fprintf(w, "! warning: %s\n", warning)
	}
	verdict := "passed"
	if !rep.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "\n%s\n", verdict)
}

func statusMark(s check.Status) string {
	switch s {
	case check.StatusOK:
		return "✓"
	case check.StatusWarn:
		return "!"
	case check.StatusFail:
		return "✗"
	}
	return "-"
}

func formatDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return d.Round(100 * time.Millisecond).String()
}

// testError is nil when every protocol passed; otherwise it names each
// failure, and its hint is the fix.
func testError(rep *check.Report) error {
	if rep.Passed {
		return nil
	}
	var msgs, hints []string
	temporary := true
	for _, res := range rep.Results {
		s := res.Failed()
		if s == nil {
			continue
		}
		msg := fmt.Sprintf("account %s: %s failed at %s", rep.Account, strings.ToUpper(string(res.Protocol)), s.Name)
		if s.Diagnosis != nil {
			msg += ": " + s.Diagnosis.Cause
			if !slices.Contains(hints, s.Diagnosis.Fix) {
				hints = append(hints, s.Diagnosis.Fix)
			}
		} else if s.Detail != "" {
			msg += ": " + s.Detail
		}
		msgs = append(msgs, msg)
		if s.Diagnosis == nil || !s.Diagnosis.Temporary {
			temporary = false
		}
	}
	err := &Error{Msg: strings.Join(msgs, "\n"), Hint: strings.Join(hints, "\n")}
	if temporary {
		// Every failure may pass by itself, as other temporary failures.
		err.Code = exitTempFail
	}
	return err
}

// linePrefixer prefixes every line written to it.
type linePrefixer struct {
	w      io.Writer
	prefix string
	mid    bool // inside a line
}

func (p *linePrefixer) Write(b []byte) (int, error) {
	var out []byte
	for _, c := range b {
		if !p.mid {
			out = append(out, p.prefix...)
		}
		out = append(out, c)
		p.mid = c != '\n'
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}
