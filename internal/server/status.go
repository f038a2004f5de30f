package server

import (
	"context"
	_ "embed"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailkey/mailkey/internal/account"
	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/internal/tokens"
)

// statusHTML is the status page's template. It never shows a token: only
// states, times and counts.
//
//go:embed status.html
var statusHTML string

// statusPage is parsed on first use: every command of the binary would pay
// for parsing it at start-up.
var statusPage = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("status").Parse(statusHTML))
})

type statusData struct {
	Version, Started, CertFile, Fingerprint string
	Accounts                                []accountRow
	Listeners                               []listenerRow
	Sessions                                []sessionRow
	// CSRF is the token the page's forms carry; "" when the page offers
	// no sign-in. Notice is what just failed, in words.
	CSRF, Notice string
}

// accountRow is one account on the page, in words: never a token.
type accountRow struct {
	Name, Email, State string
	Mailbox            string // the shared mailbox the account opens, if any
	NeedsPerson        bool   // no mail client can log in until a person acts
	CanSignIn          bool   // the page can sign the account in again
	TokenExpiry        string // the access token's expiry
	GrantExpiry        string // the refresh token's deadline, when the provider gave one
	LastRefresh        string // the last refresh that got a new token
	// LastError is the background refresher's last failure, with the fix,
	// when nothing has been written since.
	LastError, LastFix string
	Warnings           []string // deadlines ahead (account.EarlyWarnings), with what to do
}
type listenerRow struct{ Name, Addr string }
type sessionRow struct {
	Protocol                                                           string
	Active, Relaying, Accepted, LoginsOK, LoginsFailed, UpstreamFailed int64
}

func (s *Server) statusHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.m.handler())
	si := newSignIns()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !trusted(r):
			http.Error(w, "forbidden: open the status page at its loopback address, such as http://127.0.0.1:PORT/", http.StatusForbidden)
		case s.cfg.SignIn != nil && r.URL.Query().Has("state"):
			s.finishSignIn(si, w, r) // the provider's redirect
		default:
			s.renderStatus(w, r, si, http.StatusOK, "")
		}
	})
	if s.cfg.SignIn != nil {
		mux.HandleFunc("POST /login", s.startSignIn(si))
	}
	return mux
}

// renderStatus writes the status page, with notice (what just failed) on
// top when not "".
func (s *Server) renderStatus(w http.ResponseWriter, r *http.Request, si *signIns, code int, notice string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	// Not no-referrer: the browser would then send "Origin: null" with
	// the page's own forms.
	w.Header().Set("Referrer-Policy", "same-origin")
	d := s.statusData(r.Context())
	d.Notice = notice
	if s.cfg.SignIn != nil {
		d.CSRF = si.csrf
	}
	w.WriteHeader(code)
	statusPage().Execute(w, d)
}

// readyz answers 200 "ok" once the listeners are up and every account can
// log in, else 503 with one line per account that needs a person. The
// process being alive is /healthz.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	var lines []string
	if s.started.IsZero() {
		lines = append(lines, "listeners: not up yet")
	}
	for _, h := range s.health(r.Context()) {
		if why := h.needsPerson(s.cfg.Command); why != "" {
			lines = append(lines, h.name+": "+why)
		}
	}
	if len(lines) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("not ready\n" + strings.Join(lines, "\n") + "\n"))
		return
	}
	w.Write([]byte("ok\n"))
}

// accountHealth is what the store says of one account now.
type accountHealth struct {
	name    string
	conf    *config.Account
	appOnly bool
	rec     *store.Record // nil when there is none or it cannot be read
	err     error         // why there is no rec
}

// health reads every account's record, never quoting a token.
func (s *Server) health(ctx context.Context) []accountHealth {
	accounts := s.accounts()
	out := make([]accountHealth, 0, len(accounts))
	for _, a := range accounts {
		h := accountHealth{name: a.Name, conf: a, appOnly: a.Flow != "", err: errNoStore}
		if s.cfg.Store != nil {
			h.rec, h.err = s.cfg.Store.Get(ctx, a.Name)
		}
		out = append(out, h)
	}
	return out
}

// errNoStore stands for the record of a server that has no store.
var errNoStore = errors.New("no token store")

// needsPerson says why no mail client of the account can log in until a
// person acts, or "" when nothing is wrong that mailkey cannot mend.
func (h accountHealth) needsPerson(command func(Step, string) string) string {
	name := func(step Step) string {
		if command == nil {
			return ""
		}
		return " (" + command(step, h.name) + ")"
	}
	switch {
	case errors.Is(h.err, store.ErrNotFound) && h.appOnly, errors.Is(h.err, errNoStore):
		return ""
	case errors.Is(h.err, store.ErrNotFound), h.err == nil && tokens.NeedsLogin(h.rec):
		return "needs login" + name(StepLogin)
	case h.err != nil:
		return "token record unreadable" + name(StepStatus)
	}
	return ""
}

func (s *Server) statusData(ctx context.Context) statusData {
	d := statusData{Version: s.cfg.Version, CertFile: s.certFile, Fingerprint: s.fingerprint}
	if !s.started.IsZero() {
		d.Started = s.started.Format(time.RFC3339)
	}
	now := time.Now()
	for _, h := range s.health(ctx) {
		conf := h.conf
		row := accountRow{Name: h.name, Email: conf.Email, Mailbox: conf.Mailbox, State: s.tokenState(h, now), NeedsPerson: h.needsPerson(nil) != "",
			CanSignIn: s.cfg.SignIn != nil && !h.appOnly}
		if rec := h.rec; rec != nil {
			row.TokenExpiry = when(rec.Expiry, now)
			if rec.AccessToken == "" {
				row.TokenExpiry = ""
			}
			row.LastRefresh = when(rec.LastRefresh, now)
			switch {
			case h.appOnly:
				row.GrantExpiry = "none: app-only tokens are fetched again as needed"
			case rec.RefreshToken == "":
				row.GrantExpiry = "no refresh token: a login is needed once the token expires"
			case rec.RefreshExpiry.IsZero():
				row.GrantExpiry = "no deadline set by the provider"
			default:
				row.GrantExpiry = when(rec.RefreshExpiry, now)
			}
			if tokens.NeedsLogin(rec) && rec.Reason != "" {
				row.State += ": " + rec.Reason
			}
		}
		if r := s.refresherOf(h.name); r != nil {
			if res := r.lastResult(); res.Error != "" && (h.rec == nil || !res.At.Before(h.rec.Updated)) {
				row.LastError, row.LastFix = "at "+res.At.Local().Format(time.DateTime)+": "+res.Error, res.Fix
			}
		}
		for _, w := range account.EarlyWarnings(conf, h.rec, now) {
			row.Warnings = append(row.Warnings, w.Text+"; "+w.Fix)
		}
		d.Accounts = append(d.Accounts, row)
	}
	for _, l := range s.listeners {
		d.Listeners = append(d.Listeners, listenerRow{Name: l.name, Addr: s.Addr(l.name)})
	}
	if a := s.Addr(ListenStatus); a != "" {
		d.Listeners = append(d.Listeners, listenerRow{Name: ListenStatus, Addr: a})
	}
	for _, p := range []string{"imap", "pop3", "smtp"} {
		m := s.byProto[p]
		if m == nil {
			continue
		}
		d.Sessions = append(d.Sessions, sessionRow{Protocol: p, Active: m.Active.Load(), Relaying: m.Spliced.Load(),
			Accepted: m.Accepted.Load(), LoginsOK: m.AuthSucceeded.Load(), LoginsFailed: m.AuthFailed.Load() + m.RateLimited.Load(),
			UpstreamFailed: m.UpstreamFailed.Load()})
	}
	return d
}

// tokenState describes a stored record in words, never quoting a token.
func (s *Server) tokenState(h accountHealth, now time.Time) string {
	if why := h.needsPerson(s.cfg.Command); why != "" {
		return why
	}
	rec := h.rec
	switch {
	case errors.Is(h.err, errNoStore):
		return "unknown"
	case errors.Is(h.err, store.ErrNotFound):
		return "none yet (app-only: fetched on first use)"
	case rec.AccessToken == "":
		return "expired (renewed on next use)"
	case rec.Expiry.IsZero():
		return "valid"
	case rec.Expiry.After(now):
		return "valid until " + rec.Expiry.Local().Format(time.DateTime)
	}
	return "expired (renewed on next use)"
}

// when words a time on the page: local, with how far it is from now; ""
// for a zero time.
func when(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := t.Sub(now)
	rel := "in " + span(d)
	if d < 0 {
		rel = span(-d) + " ago"
	}
	return t.Local().Format(time.DateTime) + " (" + rel + ")"
}

// span words a duration roughly, as a person reads it.
func span(d time.Duration) string {
	n := func(unit time.Duration) string { return strconv.Itoa(int(d.Round(unit) / unit)) }
	switch {
	case d >= 48*time.Hour:
		return n(24*time.Hour) + " days"
	case d >= 2*time.Hour:
		return n(time.Hour) + " hours"
	case d >= 2*time.Minute:
		return n(time.Minute) + " minutes"
	}
	return n(time.Second) + " seconds"
}
