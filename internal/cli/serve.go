package cli

import (
	"cmp"
	"errors"
	"log/slog"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailkey/mailkey/internal/account"
	"github.com/mailkey/mailkey/internal/apppass"
	"github.com/mailkey/mailkey/internal/audit"
	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/server"
)

type serveCmd struct {
	IMAP            *string       `name:"imap" placeholder:"ADDR" help:"IMAP listener, overriding [proxy] imap; \"off\" turns it off."`
	POP3            *string       `name:"pop3" placeholder:"ADDR" help:"POP3 listener, overriding [proxy] pop3; \"off\" turns it off."`
	SMTP            *string       `name:"smtp" placeholder:"ADDR" help:"SMTP submission listener, overriding [proxy] smtp; \"off\" turns it off."`
	IMAPS           *string       `name:"imaps" placeholder:"ADDR" help:"Implicit-TLS IMAP listener, overriding [proxy] imaps."`
	POP3S           *string       `name:"pop3s" placeholder:"ADDR" help:"Implicit-TLS POP3 listener, overriding [proxy] pop3s."`
	SMTPS           *string       `name:"smtps" placeholder:"ADDR" help:"Implicit-TLS SMTP listener, overriding [proxy] smtps."`
	Status          *string       `name:"status" placeholder:"ADDR" help:"Status page and /metrics listener, overriding [proxy] status."`
	LogFormat       string        `name:"log-format" enum:"text,json," default:"" help:"Log as text or json, overriding [proxy] log_format."`
	LogLevel        string        `name:"log-level" enum:"debug,info,warn,error," default:"" help:"Log from this level on (debug, info, warn, error), overriding [proxy] log_level."`
	ShutdownTimeout time.Duration `name:"shutdown-timeout" default:"10s" help:"How long running sessions may finish after SIGINT or SIGTERM."`
	NoAgent         bool          `name:"no-agent" help:"Do not answer mailkey token on the agent socket, overriding [proxy] agent."`
}

// override sets *dst from a flag: "off" (or "") turns the listener off.
func override(dst *string, flag *string) {
	if flag == nil {
		return
	}
	if *flag == "off" {
		*dst = ""
		return
	}
	*dst = *flag
}

// defaultMemoryLimit is serve's soft memory limit unless GOMEMLIMIT is set.
const defaultMemoryLimit = 256 << 20

func (c *serveCmd) Run(e *env) error { return asService(e, c.run) }

// run is mailkey serve; ready tells a Windows service's manager that it
// serves.
func (c *serveCmd) run(e *env, ready func()) error {
	path, err := configPath()
	if err != nil {
		return err
	}
	// One broken account never stops the others: it is left out, and
	// said so once the log is set up.
	cfg, skipped, err := config.LoadServing(path)
	if err != nil {
		return configError(err)
	}
	p := cfg.Proxy
	for _, o := range []struct{ dst, flag *string }{
		{&p.IMAP, c.IMAP}, {&p.POP3, c.POP3}, {&p.SMTP, c.SMTP},
		{&p.IMAPS, c.IMAPS}, {&p.POP3S, c.POP3S}, {&p.SMTPS, c.SMTPS}, {&p.Status, c.Status},
	} {
		override(o.dst, o.flag)
	}
	p.LogFormat = cmp.Or(c.LogFormat, p.LogFormat)
	p.LogLevel = cmp.Or(c.LogLevel, p.LogLevel)
	log := daemonLogger(e.stderr, p.LogFormat, p.LogLevel)
	logLeftOut(log, skipped)
	var cur atomic.Pointer[config.Config]
	cur.Store(cfg)
	if os.Getenv("GOMEMLIMIT") == "" {
		// Most of a proxy's memory is per-session overhead that the
		// garbage collector would otherwise let grow to twice the live
		// heap; a soft limit keeps 10,000 idle sessions under 300 MiB.
		// Above it the collector only runs more often.
		debug.SetMemoryLimit(defaultMemoryLimit)
	}

	st, err := e.openStore()
	if err != nil {
		return err
	}
	// Every account is resolved (discovery, OAuth client) once, on first
	// need; app-only accounts get their first token minted, as mailkey
	// token does.
	tok := e.accounts(cfg, cfg.Accounts, st, log)
	aud := audit.New(cfg.AuditFile, "serve", log)
	var srv *server.Server
	sd := &notifier{log: log}
	srv, err = server.New(server.Config{
		Proxy:           p,
		Accounts:        cfg.Accounts,
		Tokens:          tok,
		Store:           st,
		Passwords:       apppass.Open(st.Dir()),
		StateDir:        st.Dir(),
		RefreshMargin:   cfg.RefreshMargin,
		ShutdownTimeout: c.ShutdownTimeout,
		Logger:          log,
		Hint: func(name string, err error) string {
			conf, cerr := cur.Load().Account(name)
			if cerr != nil {
				return ""
			}
			return tokenHint(conf, err)
		},
		Command:        serveCommand,
		NotifyCommand:  p.NotifyCommand,
		NotifyDesktop:  p.NotifyDesktop,
		NotifyReminder: p.NotifyReminder,
		Audit:          aud,
		SignIn:         &pageSignIn{e: e, cfg: &cur, st: st, set: tok},
		Version:        buildVersion().String(),
		Ready:          func() { sd.ready(listenStatus(srv)); ready() },
		Stopping:       sd.stopping,
	})
	if err != nil {
		var le *server.ListenError
		if errors.As(err, &le) {
			return &Error{Msg: err.Error(), Hint: le.Hint, Err: err}
		}
		return &Error{Msg: err.Error(), Hint: "check [proxy] in " + cfg.File + ": mailkey config check", Err: err}
	}
	if len(cfg.Accounts) == 0 {
		log.Warn("no accounts configured: every login will fail", "hint", "mailkey add ACCOUNT")
	}
	if err := srv.Listen(); err != nil {
		return &Error{Msg: err.Error(), Hint: "stop what uses the port, or choose another address in [proxy] or with --imap/--pop3/--smtp", Err: err}
	}
	if p.Agent && !c.NoAgent {
		stop := serveAgent(st.Dir(), tok, log)
		defer stop() // before the lifecycle drains the manager
	}
	if reloadSignal != nil && e.life != nil {
		requests, stop := e.life.onSignal(reloadSignal)
		defer stop()
		go func() {
			for {
				select {
				case <-requests:
					reload(path, &cur, tok, srv, aud, log)
				case <-e.ctx.Done():
					return
				}
			}
		}()
	}
	return srv.Run(e.ctx)
}

// listenStatus is serve's status line for its service manager: where each
// listener is bound, as "imap 127.0.0.1:1143, smtp 127.0.0.1:1587".
func listenStatus(srv *server.Server) string {
	var on []string
	for _, name := range []string{server.ListenIMAP, server.ListenIMAPS, server.ListenPOP3, server.ListenPOP3S,
		server.ListenSMTP, server.ListenSMTPS, server.ListenStatus} {
		if addr := srv.Addr(name); addr != "" {
			on = append(on, name+" "+addr)
		}
	}
	if len(on) == 0 {
		return "serving no listener"
	}
	return "listening: " + strings.Join(on, ", ")
}

// reload re-reads the configuration for a running serve: the accounts
// added, removed and changed take effect for new sessions. A file that
// cannot be loaded is refused, and the configuration loaded before goes
// on serving; an account with a problem of its own is left out.
func reload(path string, cur *atomic.Pointer[config.Config], set *account.Set, srv *server.Server, aud *audit.Log, log *slog.Logger) {
	cfg, skipped, err := config.LoadServing(path)
	if err != nil {
		msg, hint, _ := worded(configError(err))
		log.Error("configuration refused: the one loaded before goes on serving", "error", msg, "hint", hint)
		aud.Record(audit.Event{Event: audit.ConfigRefused, Detail: strings.ReplaceAll(msg, "\n", "; ")})
		return
	}
	logLeftOut(log, skipped)
	set.Update(cfg.Accounts)
	r := srv.Reload(cfg.Accounts)
	leftOut := slices.Sorted(maps.Keys(r.Skipped))
	for _, name := range leftOut {
		log.Error("account left out: it cannot be served until its configuration is fixed", "account", name, "error", r.Skipped[name].Error())
	}
	for _, e := range skipped {
		leftOut = append(leftOut, e.Account)
	}
	old := cur.Swap(cfg)
	log.Info("configuration reloaded", "file", path, "added", strings.Join(r.Added, ","), "removed", strings.Join(r.Removed, ","),
		"changed", strings.Join(r.Changed, ","), "left_out", strings.Join(slices.Compact(slices.Sorted(slices.Values(leftOut))), ","))
	if old.Proxy != cfg.Proxy || old.RefreshMargin != cfg.RefreshMargin || old.AuditFile != cfg.AuditFile {
		log.Warn("[proxy], refresh_margin and audit_file take effect when mailkey serve starts again", "file", path)
	}
	var detail []string
	for _, part := range []struct {
		what  string
		names []string
	}{{"added", r.Added}, {"removed", r.Removed}, {"changed", r.Changed}, {"left out", leftOut}} {
		if len(part.names) > 0 {
			detail = append(detail, part.what+" "+strings.Join(slices.Compact(slices.Sorted(slices.Values(part.names))), ", "))
		}
	}
	if len(detail) == 0 {
		detail = append(detail, "no account changed")
	}
	aud.Record(audit.Event{Event: audit.ConfigReloaded, Detail: strings.Join(detail, "; ")})
}

// logLeftOut logs each account LoadServing left out, with its file:line
// problem and what would fix it.
func logLeftOut(log *slog.Logger, skipped config.Errors) {
	for _, e := range skipped {
		log.Error("account left out: it cannot be served until its configuration is fixed", "account", e.Account, "error", e.Error(), "hint", e.Hint)
	}
}

// serveCommand words the next steps serve names to mail clients and on
// its status page.
func serveCommand(step server.Step, account string) string {
	switch step {
	case server.StepLogin:
		return "mailkey login " + account
	case server.StepStatus:
		if account == "" {
			return "mailkey status"
		}
		return "mailkey status " + account
	}
	return "mailkey test " + account
}
