package cli

import (
	"cmp"
	"errors"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mailkey/mailkey/internal/apppass"
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
	cfg, err := e.loadConfig()
	if err != nil {
		return err
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
			conf, cerr := cfg.Account(name)
			if cerr != nil {
				return ""
			}
			return tokenHint(conf, err)
		},
		Command:  serveCommand,
		SignIn:   &pageSignIn{e: e, cfg: cfg, st: st, set: tok},
		Version:  version(),
		Ready:    func() { sd.ready(listenStatus(srv)); ready() },
		Stopping: sd.stopping,
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
