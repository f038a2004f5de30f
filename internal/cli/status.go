package cli

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailkey/mailkey/internal/account"
	"github.com/mailkey/mailkey/internal/certs"
	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/internal/tokens"
)

type statusCmd struct {
	Account string `arg:"" optional:"" help:"Show only this account."`
	JSON    bool   `help:"Print the status as JSON."`
}

// accountStatus is what status shows for one account. It never holds a
// token: only states, times and scopes.
type accountStatus struct {
	Name        string    `json:"name"`
	Provider    string    `json:"provider"`
	Email       string    `json:"email"`
	Mailbox     string    `json:"mailbox,omitempty"`
	Flow        string    `json:"flow,omitempty"`
	State       string    `json:"state"` // none, valid, expired, needs_login, unreadable
	Detail      string    `json:"detail,omitempty"`
	Expiry      time.Time `json:"expiry,omitzero"`
	ExpiresIn   int64     `json:"expires_in,omitempty"` // seconds, as in mailkey token --json
	LastRefresh time.Time `json:"last_refresh,omitzero"`
	HasRefresh  bool      `json:"has_refresh_token"`
	Scopes      []string  `json:"scopes,omitempty"`
	Identity    string    `json:"identity,omitempty"`
	Warnings    []string  `json:"warnings,omitempty"`
	// Recovered is when the store adopted the record from a write that was
	// interrupted (until the next write); Written is when that write began.
	Recovered time.Time `json:"recovered,omitzero"`
	Written   time.Time `json:"written,omitzero"`
	// Hint is the next step for an unreadable record.
	Hint string `json:"hint,omitempty"`
}

func (c *statusCmd) Run(e *env) error {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	accounts := cfg.Accounts
	if c.Account != "" {
		a, err := cfg.Account(c.Account)
		if err != nil {
			return err
		}
		accounts = []*config.Account{a}
	}
	st, err := e.openStore()
	if err != nil {
		return err
	}
	now := time.Now()
	out := []accountStatus{} // "accounts": [] in JSON when there are none
	for _, a := range accounts {
		out = append(out, statusOf(e, st, a, now))
	}
	certFile, fingerprint := proxyCertificate(cfg, st.Dir())
	if c.JSON {
		doc := map[string]any{
			"config":     cfg.File,
			"state_dir":  st.Dir(),
			"protection": st.Protection(),
			"accounts":   out,
		}
		if fingerprint != "" {
			doc["proxy_certificate"] = map[string]string{"file": certFile, "sha256": fingerprint}
		}
		return e.writeJSON(doc)
	}
	fmt.Fprintf(e.stdout, "config:  %s\nstate:   %s\ntokens protected by: %s\n", cfg.File, st.Dir(), st.Protection())
	if fingerprint != "" {
		fmt.Fprintf(e.stdout, "proxy certificate: %s sha256 %s\n", certFile, fingerprint)
	}
	if len(out) == 0 {
		fmt.Fprintln(e.stderr, "mailkey: hint: no accounts yet: mailkey add ACCOUNT --provider PROVIDER --email ADDRESS")
	}
	for _, s := range out {
		if s.Mailbox != "" {
			fmt.Fprintf(e.stdout, "\n%s  (%s, %s, shared mailbox %s)\n", s.Name, s.Provider, s.Email, s.Mailbox)
		} else {
			fmt.Fprintf(e.stdout, "\n%s  (%s, %s)\n", s.Name, s.Provider, s.Email)
		}
		fmt.Fprintf(e.stdout, "  token:        %s\n", describeState(s))
		if !s.LastRefresh.IsZero() {
			fmt.Fprintf(e.stdout, "  last refresh: %s\n", s.LastRefresh.Local().Format(time.DateTime))
		}
		if len(s.Scopes) > 0 {
			fmt.Fprintf(e.stdout, "  scopes:       %s\n", strings.Join(s.Scopes, " "))
		}
		if s.Identity != "" {
			fmt.Fprintf(e.stdout, "  signed in as: %s\n", s.Identity)
		}
		if !s.Recovered.IsZero() {
			fmt.Fprintf(e.stdout, "  recovered:    from an interrupted write (of %s) at %s\n",
				s.Written.Local().Format(time.DateTime), s.Recovered.Local().Format(time.DateTime))
		}
		if s.Hint != "" {
			fmt.Fprintf(e.stdout, "  next step:    %s\n", strings.ReplaceAll(s.Hint, "\n", "\n                "))
		}
		for _, w := range s.Warnings {
			fmt.Fprintf(e.stdout, "  warning:      %s\n", w)
		}
	}
	return nil
}

// proxyCertificate returns the listener certificate of mailkey serve and
// its fingerprint, or "" when there is none yet.
func proxyCertificate(cfg *config.Config, stateDir string) (string, string) {
	certFile := cfg.Proxy.CertFile
	if certFile == "" {
		certFile, _ = certs.Paths(stateDir)
	}
	fp, err := certs.FileFingerprint(certFile)
	if err != nil {
		return certFile, ""
	}
	return certFile, fp
}

func describeState(s accountStatus) string {
	switch s.State {
	case "none":
		if s.Flow != "" {
			return "none yet (app-only: fetched on first use)"
		}
		return "none yet: run mailkey login " + s.Name
	case "valid":
		if s.Expiry.IsZero() {
			return "valid"
		}
		return fmt.Sprintf("valid until %s (in %s)", s.Expiry.Local().Format(time.DateTime), time.Duration(s.ExpiresIn)*time.Second)
	case "expired":
		if s.HasRefresh || s.Flow != "" {
			return "expired (renewed on next use)"
		}
		return "expired, and no refresh token: run mailkey login " + s.Name
	case "needs_login":
		return "needs login: " + s.Detail + " (run mailkey login " + s.Name + ")"
	}
	return s.State + ": " + s.Detail
}

func statusOf(e *env, st *store.FileStore, a *config.Account, now time.Time) accountStatus {
	s := accountStatus{Name: a.Name, Provider: a.Provider, Email: a.Email, Mailbox: a.Mailbox, Flow: a.Flow}
	rec, err := st.Get(e.ctx, a.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.State = "none"
		s.Warnings = earlyWarnings(a, nil, now)
		return s
	case err != nil:
		s.State = "unreadable"
		s.Detail = err.Error()
		var ce *store.CorruptError
		if errors.As(err, &ce) {
			s.Hint = corruptHint(ce)
		}
		return s
	}
	s.Recovered = rec.Recovered
	if !rec.Recovered.IsZero() {
		s.Written = rec.Updated
	}
	s.LastRefresh = rec.LastRefresh
	s.HasRefresh = rec.RefreshToken != ""
	s.Scopes = rec.Scopes
	s.Identity = rec.Identity
	switch {
	case tokens.NeedsLogin(rec):
		s.State = "needs_login"
		s.Detail = rec.Reason
	case rec.AccessToken == "" && a.Flow != "":
		// An app-only account whose first token the provider refused.
		s.State = "none"
	case rec.AccessToken == "":
		s.State = "expired"
	case rec.Expiry.IsZero() || rec.Expiry.After(now):
		s.State = "valid"
		s.Expiry = rec.Expiry
		if !rec.Expiry.IsZero() {
			s.ExpiresIn = int64(rec.Expiry.Sub(now).Round(time.Second) / time.Second)
		}
	default:
		s.State = "expired"
		s.Expiry = rec.Expiry
	}
	s.Warnings = warnings(a, rec, now)
	if dir, err := stateDir(); err == nil {
		if lr, ok := loadLastRefresh(dir, a.Name); ok && !lr.OK && lr.Time.After(rec.LastRefresh) && lr.Time.After(rec.Updated) {
			w := "the last background refresh (" + lr.Time.Local().Format(time.DateTime) + ") failed: " + lr.Error
			if lr.Hint != "" {
				w += "; " + lr.Hint
			}
			s.Warnings = append(s.Warnings, w)
		}
	}
	return s
}

// earlyWarnings words account.EarlyWarnings: what stops the account
// working on a known date, and what to do before then.
func earlyWarnings(a *config.Account, rec *store.Record, now time.Time) []string {
	var ws []string
	for _, w := range account.EarlyWarnings(a, rec, now) {
		text := w.Text + "; " + w.Fix
		if w.Kind == account.WarnIdle {
			text += ": mailkey token " + a.Name + ", or keep mailkey serve running"
		}
		ws = append(ws, text)
	}
	return ws
}

// warnings lists what will go wrong later: a refresh token with a deadline,
// no refresh token where one is expected, scopes a protocol needs.
func warnings(a *config.Account, rec *store.Record, now time.Time) []string {
	var ws []string
	if w := refreshWarning(rec, now); w != "" {
		ws = append(ws, w)
	}
	ws = append(ws, earlyWarnings(a, rec, now)...)
	if rec.NeedsLogin && !tokens.NeedsLogin(rec) {
		// Marked by an older version after a client configuration error:
		// the grant is kept and the next use asks the provider again.
		ws = append(ws, "a refresh failed with "+rec.Reason+": the provider rejected the app's client credentials or scopes, not the login; check client_secret (or client_secret_cmd), the certificate and scopes of account "+a.Name+", then: mailkey token "+a.Name)
	}
	p, err := provider.Lookup(a.Provider)
	if err != nil {
		return ws
	}
	if a.Flow == "" && rec.RefreshToken == "" && !rec.NeedsLogin {
		w := "no refresh token was granted: you will have to log in again when the token expires"
		if len(p.BaseScopes) > 0 {
			// The preset's base scopes are what asks for a refresh token.
			w += " (the " + strings.Join(p.BaseScopes, " ") + " scope is missing)"
		}
		ws = append(ws, w)
	}
	if len(a.Scopes) > 0 || len(rec.Scopes) == 0 || a.Provider == provider.Generic {
		return ws
	}
	if a.Flow == config.FlowClientCredentials {
		return ws // app-only tokens carry roles, not these scopes
	}
	for _, proto := range a.Protocols {
		for _, need := range p.Scopes[proto] {
			if !slices.Contains(rec.Scopes, need) {
				ws = append(ws, fmt.Sprintf("the token lacks scope %s, which %s needs: log in again with mailkey login %s", need, strings.ToUpper(string(proto)), a.Name))
			}
		}
	}
	return ws
}
