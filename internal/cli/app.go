package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mailkey/mailkey/internal/account"
	"github.com/mailkey/mailkey/internal/config"
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

// acct is one account opened for a command: the configuration, the store,
// and the account as package account assembles it, with its lifecycle
// manager.
type acct struct {
	cfg  *config.Config
	conf *config.Account
	st   *store.FileStore
	set  *account.Set
	acc  *account.Account
	mgr  *tokens.Manager
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
// resolve succeeds, a.acc.R() and a.acc.OAuth() are nil.
func (e *env) openAccountDeferred(name string) (*acct, error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return nil, err
	}
	conf, err := cfg.Account(name)
	if err != nil {
		return nil, err
	}
	return e.openConfigured(cfg, conf)
}

// openConfigured is openAccountDeferred for an account of a configuration already loaded.
func (e *env) openConfigured(cfg *config.Config, conf *config.Account) (*acct, error) {
	st, err := e.openStore()
	if err != nil {
		return nil, err
	}
	set := e.accounts(cfg, []*config.Account{conf}, st, e.logger())
	return &acct{cfg: cfg, conf: conf, st: st, set: set, acc: set.Account(conf.Name), mgr: set.Manager()}, nil
}

// accounts assembles the accounts on st, their discovery cached in the
// state folder; the manager's sent requests are seen through before the
// process exits. log gets warnings, such as a stale discovery document in
// use.
func (e *env) accounts(cfg *config.Config, list []*config.Account, st *store.FileStore, log *slog.Logger) *account.Set {
	cache := &provider.DiscoveryCache{Dir: provider.CacheDir(st.Dir()), Logger: log}
	set := account.NewSet(e.ctx, list, st, cache, &tokens.Options{Margin: cfg.RefreshMargin, Logger: log})
	if e.life != nil {
		e.life.track(set.Manager())
	}
	return set
}

// resolve runs the account's discovery and builds its OAuth client, once.
func (a *acct) resolve(ctx context.Context) error {
	if err := a.acc.Resolve(ctx); err != nil {
		return resolveError(a.conf, err, false)
	}
	return nil
}

// resolveError words an account that could not be made ready; refreshing
// says that a token refresh needed it, which is then what failed.
func resolveError(conf *config.Account, err error, refreshing bool) error {
	var re *account.ResolveError
	if !errors.As(err, &re) {
		return err
	}
	msg := re.Error()
	if refreshing {
		prefix := "account " + conf.Name + ": "
		msg = prefix + "token refresh failed: " + strings.TrimPrefix(msg, prefix)
	}
	switch {
	case re.Secret:
		return &Error{Msg: msg, Hint: "check client_secret_cmd in " + conf.File, Err: err}
	case re.Unavailable():
		return &Error{Msg: msg, Err: err, Code: exitTempFail,
			Hint: "the provider could not be reached; the stored tokens are kept: try again in a moment"}
	}
	return &Error{Msg: msg, Err: err, Hint: "check the account's issuer and network, then: mailkey config check"}
}

// seedError words a failure to save an app-only account's first record.
func seedError(conf *config.Account, err error) error {
	if errors.As(err, new(*account.ResolveError)) {
		return resolveError(conf, err, false)
	}
	return storeError(err)
}

// logger writes warnings (never secrets) to stderr in mailkey's style.
func (e *env) logger() *slog.Logger {
	return slog.New(&lineHandler{e: e, level: slog.LevelWarn})
}

// seed saves the empty record an app-only account starts from
// (account.Set.Seed).
func (a *acct) seed(ctx context.Context) error {
	if err := a.set.Seed(ctx, a.conf.Name); err != nil {
		return seedError(a.conf, err)
	}
	return nil
}

// token returns a valid token for the account, minting the first one for
// app-only accounts, which need no login.
func (a *acct) token(ctx context.Context) (*store.Record, error) {
	if err := a.seed(ctx); err != nil {
		return nil, err
	}
	rec, err := a.mgr.Get(ctx, a.conf.Name)
	if err != nil {
		return nil, tokenError(a.conf, err)
	}
	return rec, nil
}

// tokenError words the manager's errors with the next step.
func tokenError(conf *config.Account, err error) error {
	if errors.As(err, new(*account.ResolveError)) {
		return resolveError(conf, err, true)
	}
	hint := tokenHint(conf, err)
	if hint == "" {
		return storeError(err)
	}
	e := &Error{Msg: err.Error(), Hint: hint, Err: err}
	var ce *tokens.ClientConfigError
	var te *tokens.TransientError
	var ec *tokens.EndpointChangedError
	switch {
	case errors.As(err, &ce), errors.As(err, &ec):
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
	var ec *tokens.EndpointChangedError
	switch {
	case errors.As(err, &rf):
		return refusedHint(conf)
	case errors.As(err, &ec):
		return "to use the new endpoint, log in through it: mailkey login " + name +
			"\nor restore the tenant, cloud, issuer or token_url account " + name + " had at the login (mailkey config check): the stored login then works again"
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
