package account

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/oauth"
	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/internal/tokens"
)

// Account is one configured account, made ready on first need.
type Account struct {
	Conf  *config.Account
	cache *provider.DiscoveryCache

	mu     sync.Mutex // guards the fields Resolve sets
	r      *config.Resolved
	hc     *http.Client
	client *oauth.Client
}

// New returns the account of conf; it does no I/O. Discovery goes through
// cache, which nil leaves out.
func New(conf *config.Account, cache *provider.DiscoveryCache) *Account {
	return &Account{Conf: conf, cache: cache}
}

// ResolveError says that an account could not be made ready: its ca_file
// or its provider's discovery failed, or (Secret) its client_secret_cmd did.
type ResolveError struct {
	Account string
	Secret  bool
	Err     error
}

func (e *ResolveError) Error() string {
	msg := e.Err.Error()
	if !strings.HasPrefix(msg, "account "+e.Account+":") {
		msg = "account " + e.Account + ": " + msg
	}
	return msg
}

func (e *ResolveError) Unwrap() error { return e.Err }

// Unavailable reports that the provider is down or unreachable: nothing is
// wrong with the account, and nothing stored was touched.
func (e *ResolveError) Unavailable() bool {
	var ne net.Error
	return !e.Secret && (errors.As(e.Err, &ne) || errors.Is(e.Err, provider.ErrUnavailable))
}

// Resolve builds, once, the account's HTTP client (trusting its ca_file),
// resolves its endpoints (a generic provider's discovery, through the
// cache) and builds its OAuth client (running client_secret_cmd). Errors
// are *ResolveError.
func (a *Account) Resolve(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.r != nil {
		return nil
	}
	hc, err := httpClient(a.Conf.CAFile)
	if err != nil {
		return &ResolveError{Account: a.Conf.Name, Err: err}
	}
	discover := provider.Discover
	if a.cache != nil {
		discover = a.cache.Discover
	}
	r, err := a.Conf.ResolveWith(ctx, hc, discover)
	if err != nil {
		return &ResolveError{Account: a.Conf.Name, Err: err}
	}
	client, err := OAuthClient(ctx, r, hc)
	if err != nil {
		return &ResolveError{Account: a.Conf.Name, Secret: true, Err: err}
	}
	a.r, a.hc, a.client = r, hc, client
	return nil
}

// R returns the resolved account; nil until Resolve succeeds.
func (a *Account) R() *config.Resolved {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.r
}

// HTTP returns the client for the account's provider; nil until Resolve
// succeeds.
func (a *Account) HTTP() *http.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hc
}

// OAuth returns the account's OAuth client; nil until Resolve succeeds.
func (a *Account) OAuth() *oauth.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.client
}

// Source resolves the account and returns what mints its tokens.
func (a *Account) Source(ctx context.Context) (tokens.Source, error) {
	if err := a.Resolve(ctx); err != nil {
		return nil, err
	}
	return &Source{R: a.R(), Client: a.OAuth()}, nil
}

// TLSConfig is the verified TLS configuration for the account's mail
// server serverName.
func (a *Account) TLSConfig(serverName string) (*tls.Config, error) {
	return TLSConfig(a.Conf.CAFile, serverName)
}

// AppOnly reports whether the account mints tokens without a person
// (client credentials or a service account): it needs no login.
func (a *Account) AppOnly() bool {
	return a.Conf.Flow == config.FlowClientCredentials || a.Conf.Flow == config.FlowServiceAccount
}

// empty is the record an account's tokens start from: where they come
// from, and nothing else. The account must be resolved.
func (a *Account) empty() *store.Record {
	r := a.R()
	return &store.Record{Account: a.Conf.Name, TokenURL: r.TokenURL, Tenant: r.Tenant}
}

// Record is the record of a token a login just got, issued at now. The
// account must be resolved.
func (a *Account) Record(t *oauth.Token, now time.Time) *store.Record {
	return tokens.Apply(a.empty(), Fresh(t), now)
}

// Set is the accounts of one configuration sharing a token store and one
// lifecycle manager; it implements what mailkey serve's proxy needs of
// tokens (Get, ForceRefresh, RefreshDue).
type Set struct {
	st    store.Store
	mgr   *tokens.Manager
	cache *provider.DiscoveryCache
	seed  sync.Mutex // one app-only first record at a time

	mu    sync.RWMutex
	accts map[string]*Account
}

// NewSet returns the accounts, their lifecycle manager (with opts) and
// nothing more: each account resolves when its manager first needs a
// token, within ctx.
func NewSet(ctx context.Context, accounts []*config.Account, st store.Store, cache *provider.DiscoveryCache, opts *tokens.Options) *Set {
	s := &Set{st: st, cache: cache, accts: make(map[string]*Account, len(accounts))}
	for _, c := range accounts {
		s.accts[c.Name] = New(c, cache)
	}
	s.mgr = tokens.New(st, func(name string) (tokens.Source, error) {
		a := s.Account(name)
		if a == nil {
			return nil, errors.New("unknown account " + name)
		}
		return a.Source(ctx)
	}, opts)
	return s
}

// Update makes the set the accounts of a reloaded configuration: an
// account configured as before keeps what it resolved, a changed one is
// resolved anew on its next need, a removed one is gone. Tokens in flight
// are seen through by the one manager.
func (s *Set) Update(accounts []*config.Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]*Account, len(accounts))
	for _, c := range accounts {
		if a := s.accts[c.Name]; a != nil && Same(a.Conf, c) {
			next[c.Name] = a
			continue
		}
		next[c.Name] = New(c, s.cache)
	}
	s.accts = next
}

// Same reports whether two configurations of an account are the same,
// wherever in the file they are written.
func Same(a, b *config.Account) bool {
	x, y := *a, *b
	x.File, x.Line, y.File, y.Line = "", 0, "", 0
	return reflect.DeepEqual(x, y)
}

// Manager returns the lifecycle manager of the set.
func (s *Set) Manager() *tokens.Manager { return s.mgr }

// Account returns the account called name, or nil.
func (s *Set) Account(name string) *Account {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.accts[name]
}

// Seed saves the empty record an app-only account starts from, so that
// the manager mints its first token as it renews later ones. Other
// accounts, and accounts with a record, are left alone.
func (s *Set) Seed(ctx context.Context, name string) error {
	a := s.Account(name)
	if a == nil || !a.AppOnly() {
		return nil
	}
	s.seed.Lock()
	defer s.seed.Unlock()
	if _, err := s.st.Get(ctx, name); !errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err := a.Resolve(ctx); err != nil {
		return err
	}
	return s.mgr.Save(ctx, a.empty())
}

// Get returns a valid token for the account, minting the first one of an
// app-only account, which needs no login.
func (s *Set) Get(ctx context.Context, name string) (*store.Record, error) {
	if err := s.Seed(ctx, name); err != nil {
		return nil, err
	}
	return s.mgr.Get(ctx, name)
}

// ForceRefresh replaces a token a server refused (tokens.Manager).
func (s *Set) ForceRefresh(ctx context.Context, name, stale string) (*store.Record, error) {
	return s.mgr.ForceRefresh(ctx, name, stale)
}

// RefreshDue refreshes the token when it expires within within
// (tokens.Manager), minting an app-only account's first one.
func (s *Set) RefreshDue(ctx context.Context, name string, within time.Duration) (*store.Record, error) {
	if err := s.Seed(ctx, name); err != nil {
		return nil, err
	}
	return s.mgr.RefreshDue(ctx, name, within)
}
