package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mailkey/mailkey/internal/account"
	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/oauth"
	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/internal/tokens"
)

// loadConfig reads the configuration file, turning every problem into one
// error line with a hint per problem.
func (e *env) loadConfig() (*config.Config, error) {
	path, err := configPath()
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, configError(err)
	}
	return cfg, nil
}

// configPath returns the configuration file's path. config.Path's error
// already says what to set.
func configPath() (string, error) {
	path, err := config.Path()
	if err != nil {
		return "", &Error{Msg: err.Error(), Hint: "set MAILKEY_CONFIG to the configuration file", Err: err}
	}
	return path, nil
}

// stateDir returns the state folder's path.
func stateDir() (string, error) {
	dir, err := store.DefaultDir()
	if err != nil {
		cause := err
		if u := errors.Unwrap(err); u != nil {
			cause = u // store words it "find the state folder: …" already
		}
		return "", errorf("set MAILKEY_STATE_DIR to a folder for mailkey's state", "cannot find the state folder: %v", cause)
	}
	return dir, nil
}

// configError words config.Errors: every problem on its own line, every
// hint prefixed by the field it is about.
func configError(err error) error {
	var es config.Errors
	if !errors.As(err, &es) {
		return err
	}
	var msgs, hints []string
	for _, ce := range es {
		msgs = append(msgs, ce.Error())
		if ce.Hint != "" {
			if ce.Field != "" && len(es) > 1 {
				hints = append(hints, ce.Field+": "+ce.Hint)
			} else {
				hints = append(hints, ce.Hint)
			}
		}
	}
	return &Error{Msg: strings.Join(msgs, "\n"), Hint: strings.Join(hints, "\n"), Err: err}
}

// openStore opens the token store in the state directory.
func (e *env) openStore() (*store.FileStore, error) {
	dir, err := stateDir()
	if err != nil {
		return nil, err
	}
	st, err := store.OpenFile(dir, nil)
	if err != nil {
		return nil, storeError(err)
	}
	return st, nil
}

// storeError adds the next step to the store's typed errors.
func storeError(err error) error {
	var pe *store.PermissionError
	var ce *store.CorruptError
	switch {
	case errors.As(err, &pe):
		// The message already carries the chmod to run.
		return &Error{Msg: err.Error(), Err: err}
	case errors.As(err, &ce):
		return &Error{Msg: err.Error(), Err: err, Hint: corruptHint(ce)}
	case errors.Is(err, store.ErrLocked):
		return &Error{Msg: err.Error(), Hint: lockedHint(err), Err: err}
	}
	return err
}

// corruptHint says how to get an account with an unreadable record going
// again. It never suggests a backup that a rotation may have spent: using a
// replaced refresh token makes providers with reuse detection revoke the
// grant. Both commands keep the unreadable file, moved aside.
func corruptHint(ce *store.CorruptError) string {
	login := "mailkey login " + ce.Account
	switch {
	case ce.Backup != "":
		return "restore the backup, which holds the same refresh token (the unreadable file is kept): " + login + " --from-backup\nor log in again: " + login
	case ce.SpentBackup != "":
		return "log in again (the unreadable file is kept): " + login + "; do not restore the backup: its refresh token is spent"
	}
	return "log in again (the unreadable file is kept): " + login
}

// lockedHint says how to unlock a store by what protects it; the error
// itself says what is missing.
func lockedHint(err error) string {
	var le *store.LockedError
	switch {
	case !errors.As(err, &le):
	case strings.Contains(le.Protection, store.EnvPassphrase):
		return "set " + store.EnvPassphrase + " to the passphrase that protects the token store"
	case strings.Contains(le.Protection, "keyring"):
		return "unlock the OS keyring (or start its Secret Service) and leave " + store.EnvNoKeyring + " unset, then run the command again"
	}
	return "restore the key from a backup; without it the tokens cannot be read: move the tokens folder of the state directory aside and run mailkey login for each account"
}

// acct is one account made ready to act: configuration, resolved
// endpoints, OAuth client, store and lifecycle manager.
type acct struct {
	cfg  *config.Config
	conf *config.Account
	st   *store.FileStore
	mgr  *tokens.Manager
	log  *slog.Logger // warnings, such as a stale discovery document in use

	mu     sync.Mutex // guards the fields resolve sets
	r      *config.Resolved
	hc     *http.Client
	client *oauth.Client
}

// openAccount loads the configuration and the store and prepares account
// name. It does network I/O only for a generic provider's discovery, and
// none while its cached discovery document is fresh.
func (e *env) openAccount(name string) (*acct, error) {
	a, err := e.openAccountDeferred(name)
	if err != nil {
		return nil, err
	}
	if err := a.resolve(e.ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// openAccountDeferred is openAccount without the network: the provider's
// discovery runs when the manager first needs to fetch a token (or on
// resolve). A credential helper then hands out a valid stored token even
// while the provider is unreachable, and costs no request per call. Until
// resolve succeeds, a.r and a.client are nil.
func (e *env) openAccountDeferred(name string) (*acct, error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return nil, err
	}
	conf, err := cfg.Account(name)
	if err != nil {
		return nil, err
	}
	a := &acct{cfg: cfg, conf: conf, log: e.logger()}
	a.st, err = e.openStore()
	if err != nil {
		return nil, err
	}
	a.mgr = e.newManager(cfg, a.st, func(string) (tokens.Source, error) { return a.source(e.ctx) }, a.log)
	return a, nil
}

// resolve runs the account's discovery, through the cache in the state
// folder, and builds its OAuth client, once.
func (a *acct) resolve(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.r != nil {
		return nil
	}
	name := a.conf.Name
	cache := &provider.DiscoveryCache{Dir: provider.CacheDir(a.st.Dir()), Logger: a.log}
	r, hc, err := account.Resolve(ctx, a.conf, cache)
	if err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "account "+name+":") {
			msg = "account " + name + ": " + msg
		}
		var ne net.Error
		if errors.As(err, &ne) || errors.Is(err, provider.ErrUnavailable) {
			// The provider is down or unreachable: nothing is wrong with the
			// account, and nothing stored was touched.
			return &Error{Msg: msg, Err: err, Code: exitTempFail,
				Hint: "the provider could not be reached; the stored tokens are kept: try again in a moment"}
		}
		return &Error{Msg: msg, Err: err, Hint: "check the account's issuer and network, then: mailkey config check"}
	}
	client, err := account.OAuthClient(ctx, r, hc)
	if err != nil {
		return errorf("check client_secret_cmd in "+a.cfg.File, "account %s: %v", name, err)
	}
	a.r, a.hc, a.client = r, hc, client
	return nil
}

// source resolves the account and returns what mints its tokens.
func (a *acct) source(ctx context.Context) (tokens.Source, error) {
	if err := a.resolve(ctx); err != nil {
		// The manager asks for a source only to get a new token: say that
		// this is what failed, not only the discovery under it.
		var ee *Error
		if errors.As(err, &ee) {
			prefix := "account " + a.conf.Name + ": "
			c := *ee
			c.Msg = prefix + "token refresh failed: " + strings.TrimPrefix(ee.Msg, prefix)
			return nil, &c
		}
		return nil, err
	}
	return &account.Source{R: a.r, Client: a.client}, nil
}

// newManager returns the lifecycle manager for st, whose sent requests are
// seen through before the process exits.
func (e *env) newManager(cfg *config.Config, st store.Store, src func(string) (tokens.Source, error), log *slog.Logger) *tokens.Manager {
	m := tokens.New(st, src, &tokens.Options{Margin: cfg.RefreshMargin, Logger: log})
	if e.life != nil {
		e.life.track(m)
	}
	return m
}

// logger writes warnings (never secrets) to stderr in mailkey's style.
func (e *env) logger() *slog.Logger {
	return slog.New(&lineHandler{e: e, level: slog.LevelWarn})
}

// appOnly reports whether the account mints tokens without a person.
func (a *acct) appOnly() bool {
	return a.conf.Flow == config.FlowClientCredentials || a.conf.Flow == config.FlowServiceAccount
}

// seedAppOnly saves the empty record an app-only account starts from, so
// that the manager mints its first token as it renews later ones. Other
// accounts, and accounts with a record, are left alone.
func (a *acct) seedAppOnly(ctx context.Context) error {
	if !a.appOnly() {
		return nil
	}
	if _, err := a.st.Get(ctx, a.conf.Name); !errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err := a.resolve(ctx); err != nil {
		return err
	}
	return a.mgr.Save(ctx, &store.Record{Account: a.conf.Name, TokenURL: a.r.TokenURL, Tenant: a.r.Tenant})
}

// token returns a valid token for the account, minting the first one for
// app-only accounts, which need no login.
func (a *acct) token(ctx context.Context) (*store.Record, error) {
	if err := a.seedAppOnly(ctx); err != nil {
		return nil, storeError(err)
	}
	rec, err := a.mgr.Get(ctx, a.conf.Name)
	if err != nil {
		return nil, tokenError(a.conf, err)
	}
	return rec, nil
}

// tokenError words the manager's errors with the next step.
func tokenError(conf *config.Account, err error) error {
	var ee *Error
	if errors.As(err, &ee) {
		return ee // worded already (the provider's discovery failed)
	}
	hint := tokenHint(conf, err)
	if hint == "" {
		return storeError(err)
	}
	e := &Error{Msg: err.Error(), Hint: hint, Err: err}
	var ce *tokens.ClientConfigError
	var te *tokens.TransientError
	switch {
	case errors.As(err, &ce):
		e.Code = exitConfig // the app's configuration, not the user's login
	case errors.As(err, &te):
		e.Code = exitTempFail
	}
	return e
}

// tokenHint words the next step for an error of the token lifecycle
// (package tokens), or returns "" for any other error. Logs of mailkey
// serve carry the same words.
func tokenHint(conf *config.Account, err error) string {
	name := conf.Name
	var nl *tokens.NeedsLoginError
	var te *tokens.TransientError
	var rf *tokens.RefusedError
	var ce *tokens.ClientConfigError
	switch {
	case errors.As(err, &rf):
		return refusedHint(conf)
	case errors.As(err, &ce) && ce.Code == "invalid_scope":
		return "check the scopes of account " + name + " (mailkey config check): a refresh may not ask for more than the login granted; the stored login is kept, then: mailkey token " + name +
			"\nmailkey test " + name + " explains provider error codes"
	case errors.As(err, &ce):
		return "check client_secret (or client_secret_cmd) or the certificate of account " + name +
			" against the app's registration in the provider's console (a new or expired secret, a wrong client_id); the stored login is kept, then: mailkey token " + name +
			"\nmailkey test " + name + " explains provider error codes"
	case errors.As(err, &nl):
		return "mailkey login " + name
	case errors.As(err, &te) && te.RetryAfter > 0:
		return fmt.Sprintf("the provider asked to wait %s; the stored tokens are kept", te.RetryAfter)
	case errors.As(err, &te):
		return "the provider could not be reached or failed; the stored tokens are kept: try again in a moment"
	}
	return ""
}

// refreshWarning explains a refresh token with a deadline, with the login
// that will be needed after it when the provider's reason is not known.
func refreshWarning(rec *store.Record, now time.Time) string {
	w, known := tokens.RefreshExpiryWarning(rec, now)
	if w != "" && !known {
		w += "; after that, mailkey login " + rec.Account + " is needed"
	}
	return w
}

// refusedHint says where an app-only account's configuration at the provider
// is checked; mailkey test ACCOUNT names the cause when it knows it.
func refusedHint(conf *config.Account) string {
	p, _ := provider.Lookup(conf.Provider)
	var where string
	switch {
	case conf.Flow == config.FlowServiceAccount:
		where = "check the service account's domain-wide delegation in the Google Admin console (its client ID, with the scope https://mail.google.com/), and that " +
			conf.Email + " is a mailbox of the domain (docs/providers/google.md)"
	case p.AppOnlyCheck != "":
		where = strings.ReplaceAll(p.AppOnlyCheck, "{email}", conf.Email)
	default:
		where = "check the client's credentials and what it may ask for at the provider"
	}
	return where + "; mailkey test " + conf.Name + " explains provider error codes; nothing was stored, so the next request asks again"
}
