package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/mailkey/mailkey/internal/account"
	"github.com/mailkey/mailkey/internal/agent"
	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/internal/tokens"
)

// envNoAgent makes mailkey token read the store itself even when an agent
// runs.
const envNoAgent = "MAILKEY_NO_AGENT"

// agentCmd is `mailkey agent`: the token agent in the foreground, as
// ssh-agent -D runs.
type agentCmd struct {
	LogFormat string `name:"log-format" enum:"text,json" default:"text" help:"Log as text or json."`
	LogLevel  string `name:"log-level" enum:"debug,info,warn,error" default:"info" help:"Log from this level on (debug, info, warn, error)."`
}

func (c *agentCmd) Run(e *env) error {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	log := daemonLogger(e.stderr, c.LogFormat, c.LogLevel)
	dir, err := stateDir()
	if err != nil {
		return err
	}
	// The socket first: a second agent is refused before it spends a
	// key derivation, and callers that come meanwhile wait for this one.
	srv, err := agent.Listen(dir, log)
	if err != nil {
		return agentListenError(err)
	}
	defer srv.Close()
	st, err := e.openStore()
	if err != nil {
		return err
	}
	// Opening a passphrase-protected store took scrypt's 256 MiB; the
	// agent lives long, so give them back now.
	runtime.GC()
	debug.FreeOSMemory()
	tok := e.accounts(cfg, cfg.Accounts, st, log)
	if len(cfg.Accounts) == 0 {
		log.Warn("no accounts configured: every request will be sent back to the store", "hint", "mailkey add ACCOUNT, then restart the agent")
	}
	log.Info("mailkey agent answering mailkey token", "socket", srv.Path(), "accounts", len(cfg.Accounts), "protection", st.Protection())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(newAgentHandler(tok, log)) }()
	sd := &notifier{log: log}
	sd.ready("answering on " + srv.Path())
	<-e.ctx.Done()
	sd.stopping()
	err = srv.Close()
	<-done
	log.Info("mailkey agent stopped")
	if err != nil {
		return &Error{Msg: "stop the agent: " + err.Error(), Err: err}
	}
	return nil
}

// agentListenError words agent.Listen's errors with the next step.
func agentListenError(err error) error {
	var re *agent.RunningError
	var pe *agent.PathError
	switch {
	case errors.As(err, &re):
		return &Error{Msg: err.Error(), Err: err,
			Hint: "mailkey token already uses it; stop that one first (systemctl --user stop mailkey-agent, or the mailkey serve that runs)"}
	case errors.As(err, &pe):
		return &Error{Msg: err.Error(), Err: err, Hint: "set MAILKEY_STATE_DIR to a shorter folder, or move the file aside"}
	case errors.Is(err, agent.ErrUnsupported):
		return &Error{Msg: err.Error(), Err: err, Hint: "mailkey token reads the token store itself here; no agent is needed"}
	}
	return &Error{Msg: "start the agent: " + err.Error(), Err: err, Hint: "check the state folder's permissions: mailkey config path"}
}

// serveAgent starts the agent inside mailkey serve, sharing its token
// manager, and returns the function that stops it. A failure to start is
// logged, not fatal: the proxy does not need the agent.
func serveAgent(dir string, tok *account.Set, log *slog.Logger) (stop func()) {
	srv, err := agent.Listen(dir, log)
	var re *agent.RunningError
	switch {
	case errors.Is(err, agent.ErrUnsupported):
		return func() {}
	case errors.As(err, &re):
		log.Warn("another mailkey agent answers mailkey token for this state folder; this serve does not", "socket", re.Socket)
		return func() {}
	case err != nil:
		log.Warn("the token agent could not start; mailkey token reads the store itself", "error", err.Error())
		return func() {}
	}
	log.Info("agent answering mailkey token", "socket", srv.Path())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(newAgentHandler(tok, log)); err != nil {
			log.Warn("token agent stopped", "error", err.Error())
		}
	}()
	return func() {
		if err := srv.Close(); err != nil {
			log.Warn("stop the token agent", "error", err.Error())
		}
		<-done
	}
}

// agentHandler answers mailkey token requests from the agent's manager,
// by the helper's rules: a valid token at once; a token due for an early
// refresh at once, the refresh started here in the background; an expired
// one after a refresh, waited for up to the caller's wait.
type agentHandler struct {
	tok *account.Set
	log *slog.Logger

	mu      sync.Mutex
	behind  map[string]bool // accounts with a background refresh running
	unknown map[string]bool // accounts not configured, warned about once
}

func newAgentHandler(tok *account.Set, log *slog.Logger) agent.Handler {
	h := &agentHandler{tok: tok, log: log, behind: map[string]bool{}, unknown: map[string]bool{}}
	return h.answer
}

func (h *agentHandler) answer(ctx context.Context, name string, wait time.Duration) *agent.Response {
	a := h.tok.Account(name)
	if a == nil {
		// Added after the agent read its configuration.
		h.mu.Lock()
		first := !h.unknown[name]
		h.unknown[name] = true
		h.mu.Unlock()
		if first {
			h.log.Warn("agent: account not in the configuration it started with; mailkey token reads the store itself for it", "account", name, "hint", "restart the agent")
		}
		return &agent.Response{Error: &agent.Error{Kind: agent.KindUnknownAccount, Message: "account " + name + " is not in the agent's configuration"}}
	}
	if err := h.tok.Seed(ctx, name); err != nil {
		return agentError(seedError(a.Conf, err))
	}
	rec, f, err := h.tok.Manager().Peek(ctx, name)
	if err != nil {
		return agentError(tokenError(a.Conf, err))
	}
	switch f {
	case tokens.Good:
		return agentToken(rec)
	case tokens.Due:
		h.refreshBehind(name)
		return agentToken(rec)
	}
	rec, err = h.tok.Get(ctx, name)
	if err != nil {
		if ctx.Err() != nil {
			// The wait is over (or the caller left, or the agent stops);
			// the refresh goes on and stores its answer.
			return &agent.Response{Error: &agent.Error{
				Message: fmt.Sprintf("account %s: the provider did not refresh the token within %s", name, wait),
				Hint:    "the refresh goes on in the mailkey agent and saves its token: try again in a moment (mailkey token " + name + ")",
				Code:    exitTempFail}}
		}
		return agentError(tokenError(a.Conf, err))
	}
	return agentToken(rec)
}

// refreshBehind refreshes a due token in the background, one flight per
// account; the manager's lifecycle sees it through if the agent stops.
func (h *agentHandler) refreshBehind(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.behind[name] {
		return
	}
	h.behind[name] = true
	go func() {
		defer func() {
			h.mu.Lock()
			delete(h.behind, name)
			h.mu.Unlock()
		}()
		if _, err := h.tok.Get(context.Background(), name); err != nil {
			h.log.Warn("agent: background refresh failed; the next request tries again", "account", name, "error", err.Error())
		}
	}()
}

func agentToken(rec *store.Record) *agent.Response {
	return &agent.Response{AccessToken: rec.AccessToken, TokenType: rec.TokenType, Expiry: rec.Expiry}
}

// agentError carries a worded error to the caller: message, hint and exit
// status, as the CLI prints them.
func agentError(err error) *agent.Response {
	msg, hint, code := worded(err)
	return &agent.Response{Error: &agent.Error{Message: msg, Hint: hint, Code: code}}
}

// tokenFromAgent asks the state folder's agent for the account's token.
// ok is false when no agent answers (or it says to read the store): then
// the caller reads the store as before. It never opens the store.
func tokenFromAgent(e *env, conf *config.Account, wait time.Duration) (rec *store.Record, ok bool, err error) {
	if envBool(envNoAgent) {
		return nil, false, nil
	}
	dir, err := store.DefaultDir()
	if err != nil {
		return nil, false, nil // the store path words this
	}
	if agent.Absent(dir) {
		return nil, false, nil
	}
	e.life.watch() // the agent may refresh first
	name := conf.Name
	type answer struct {
		resp *agent.Response
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		resp, err := agent.Ask(e.ctx, dir, agent.Request{Account: name, WaitMS: wait.Milliseconds()})
		ch <- answer{resp, err}
	}()
	var notice <-chan time.Time
	if isTerminal(e.stderr) {
		t := time.NewTimer(refreshNotice)
		defer t.Stop()
		notice = t.C
	}
	for {
		select {
		case <-notice:
			if wait > 0 {
				e.notef("waiting up to %s for the mailkey agent to refresh the token of %s…", wait, name)
			} else {
				e.notef("waiting for the mailkey agent to refresh the token of %s…", name)
			}
			continue
		case an := <-ch:
			var na *agent.NoAnswerError
			switch {
			case errors.Is(an.err, agent.ErrNoAgent):
				return nil, false, nil
			case e.ctx.Err() != nil:
				return nil, true, &Error{Msg: fmt.Sprintf("account %s: interrupted while the mailkey agent refreshes the token", name),
					Hint: "the refresh goes on in the mailkey agent and saves its token: try again in a moment (mailkey token " + name + ")", Err: e.ctx.Err()}
			case errors.As(an.err, &na):
				return nil, true, &Error{Msg: fmt.Sprintf("account %s: %v", name, an.err), Err: an.err, Code: exitTempFail,
					Hint: "try again in a moment; if it persists, restart the agent, or set " + envNoAgent + "=1 to read the store directly"}
			case an.err != nil:
				return nil, true, &Error{Msg: fmt.Sprintf("account %s: ask the mailkey agent: %v", name, an.err), Err: an.err, Code: exitTempFail,
					Hint: "try again in a moment (mailkey token " + name + ")"}
			}
			if ae := an.resp.Error; ae != nil {
				return nil, true, &Error{Msg: ae.Message, Hint: ae.Hint, Code: ae.Code}
			}
			r := an.resp
			return &store.Record{Account: name, AccessToken: r.AccessToken, TokenType: r.TokenType, Expiry: r.Expiry}, true, nil
		}
	}
}

// envBool reads a yes/no environment variable; unset or unparsable is no.
func envBool(name string) bool {
	v, err := strconv.ParseBool(os.Getenv(name))
	return err == nil && v
}
