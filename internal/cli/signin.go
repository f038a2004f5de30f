package cli

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mailkey/mailkey/internal/account"
	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/oauth"
	"github.com/mailkey/mailkey/internal/store"
)

// pageSignIn is server.SignIn for mailkey serve's status page: the new
// tokens go through the same checks and the same token manager as
// mailkey login's, so the proxy uses them at once.
type pageSignIn struct {
	e   *env
	cfg *atomic.Pointer[config.Config] // the configuration served now (SIGHUP replaces it)
	st  *store.FileStore
	set *account.Set
}

func (p *pageSignIn) account(ctx context.Context, name string) (*acct, error) {
	cfg := p.cfg.Load()
	conf, err := cfg.Account(name)
	if err != nil {
		return nil, err
	}
	a := &acct{cfg: cfg, conf: conf, st: p.st, set: p.set, acc: p.set.Account(name), mgr: p.set.Manager()}
	if err := a.resolve(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

func (p *pageSignIn) Client(ctx context.Context, name string) (*oauth.Client, error) {
	a, err := p.account(ctx, name)
	if err != nil {
		return nil, pageError(err)
	}
	r := a.acc.R()
	switch {
	case a.acc.AppOnly():
		return nil, fmt.Errorf("account %s uses the %s flow: nobody signs in, its tokens are fetched as needed", name, r.Flow)
	case r.ClientID == "":
		return nil, pageError(errorf("mailkey add "+name+" --client-id ID", "account %s has no client_id", name))
	}
	return a.acc.OAuth(), nil
}

func (p *pageSignIn) Save(ctx context.Context, name string, tok *oauth.Token) error {
	a, err := p.account(ctx, name)
	if err != nil {
		return pageError(err)
	}
	c := &loginCmd{Account: name}
	rec := a.acc.Record(tok, time.Now())
	if rec.Identity, err = c.checkIdentity(ctx, a, tok); err != nil {
		return pageError(err)
	}
	if err := c.setAside(ctx, p.e, a.st); err != nil {
		return pageError(err)
	}
	if err := a.mgr.Save(ctx, rec); err != nil {
		return pageError(storeError(err))
	}
	return nil
}

// pageError puts an error's hint into its text, since the page shows
// only the text.
func pageError(err error) error {
	var e *Error
	if errors.As(err, &e) && e.Hint != "" {
		return fmt.Errorf("%s; next: %s", e.Msg, e.Hint)
	}
	return err
}
