package cli

import (
	"errors"

	"github.com/mailkey/mailkey/internal/audit"
	"github.com/mailkey/mailkey/internal/oauth"
	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/store"
)

type logoutCmd struct {
	Account string `arg:"" help:"The account to log out."`
	Keep    bool   `name:"local-only" help:"Forget the tokens here without revoking them at the provider."`
}

func (c *logoutCmd) Run(e *env) error {
	a, err := e.openAccount(c.Account)
	if err != nil {
		return err
	}
	unlock, err := a.st.Lock(e.ctx, c.Account)
	if err != nil {
		return storeError(err)
	}
	defer unlock()
	rec, err := a.st.Get(e.ctx, c.Account)
	if errors.Is(err, store.ErrNotFound) {
		e.notef("account %s holds no tokens: nothing to do", c.Account)
		return nil
	}
	if err != nil {
		return storeError(err)
	}
	switch {
	case c.Keep:
		e.notef("not revoking at the provider (--local-only)")
	case a.acc.R().RevokeURL == "":
		e.notef("%s has no revocation endpoint: the tokens are forgotten here but stay valid at the provider until they expire", a.acc.R().Provider)
		if p, err := provider.Lookup(a.acc.R().Provider); err == nil && p.RevokeHelp != "" {
			e.notef("%s", p.RevokeHelp)
		}
	default:
		// Revoking the refresh token ends the whole grant at most
		// providers; the access token is revoked too where it is separate.
		var revokeErr error
		if rec.RefreshToken != "" {
			revokeErr = a.acc.OAuth().Revoke(e.ctx, rec.RefreshToken, "refresh_token")
		}
		if rec.AccessToken != "" && revokeErr == nil {
			revokeErr = a.acc.OAuth().Revoke(e.ctx, rec.AccessToken, "access_token")
		}
		if revokeErr != nil && !errors.Is(revokeErr, oauth.ErrNoRevocation) {
			return &Error{
				Msg:  "could not revoke the tokens at the provider: " + revokeErr.Error(),
				Hint: "the tokens are kept; try again, or forget them here only: mailkey logout " + c.Account + " --local-only",
				Err:  revokeErr,
			}
		}
		e.notef("tokens revoked at the provider")
	}
	if err := a.st.Delete(e.ctx, c.Account); err != nil {
		return storeError(err)
	}
	detail := "tokens revoked at the provider and deleted"
	if c.Keep || a.acc.R().RevokeURL == "" {
		detail = "tokens deleted here, not revoked"
	}
	e.audit(a.cfg, "logout").Record(audit.Event{Event: audit.Logout, Account: c.Account, Detail: detail})
	e.notef("account %s logged out; its tokens are deleted here", c.Account)
	return nil
}
