package server

import (
	"context"
	_ "embed"
	"errors"
	"html/template"
	"net/http"
	"sync"
	"time"

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
}

type accountRow struct{ Name, Email, State string }
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
	mux.Handle("GET /metrics", s.m.handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		w.Header().Set("X-Frame-Options", "DENY")
		statusPage().Execute(w, s.statusData(r.Context()))
	})
	return mux
}

func (s *Server) statusData(ctx context.Context) statusData {
	d := statusData{Version: s.cfg.Version, CertFile: s.certFile, Fingerprint: s.fingerprint}
	if !s.started.IsZero() {
		d.Started = s.started.Format(time.RFC3339)
	}
	now := time.Now()
	for _, a := range s.cfg.Accounts {
		d.Accounts = append(d.Accounts, accountRow{Name: a.Name, Email: a.Email, State: s.tokenState(ctx, a.Name, a.Flow != "", now)})
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
func (s *Server) tokenState(ctx context.Context, account string, appOnly bool, now time.Time) string {
	if s.cfg.Store == nil {
		return "unknown"
	}
	rec, err := s.cfg.Store.Get(ctx, account)
	switch {
	case errors.Is(err, store.ErrNotFound) && appOnly:
		return "none yet (app-only: fetched on first use)"
	case errors.Is(err, store.ErrNotFound), err == nil && tokens.NeedsLogin(rec):
		if s.cfg.Command == nil {
			return "needs login"
		}
		return "needs login (" + s.cfg.Command(StepLogin, account) + ")"
	case err != nil:
		return "unreadable"
	case rec.AccessToken == "":
		return "expired (renewed on next use)"
	case rec.Expiry.IsZero():
		return "valid"
	case rec.Expiry.After(now):
		return "valid until " + rec.Expiry.Local().Format(time.DateTime)
	}
	return "expired (renewed on next use)"
}
