package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/oauth"
	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/upstream"
)

// checkIdentity makes sure the new tokens belong to the account's address
// before anything is stored, and returns who signed in ("" when nothing
// tells). An ID token, verified, names the address; where the provider
// names nobody (IdentityByMailLogin), the account's mail server has to
// accept the new access token for the address.
func (c *loginCmd) checkIdentity(ctx context.Context, a *acct, tok *oauth.Token) (string, error) {
	r := a.acc.R()
	switch {
	case tok.IDToken != "" && r.Issuer != "":
		id, err := a.acc.OAuth().Identify(ctx, tok)
		if err != nil {
			return "", &Error{Msg: fmt.Sprintf("cannot tell who signed in: %v", err), Hint: "try again: mailkey login " + c.Account, Err: err}
		}
		return c.compareIdentity(r, id)
	case r.IdentityByMailLogin:
		return c.proveByMailLogin(ctx, a, tok)
	}
	return "", nil
}

// compareIdentity compares the addresses an ID token names with the
// account's, case-insensitively. Microsoft's preferred_username (the
// sign-in name) may differ from its email claim (the primary address):
// either may match.
func (c *loginCmd) compareIdentity(r *config.Resolved, id *oauth.Identity) (string, error) {
	var names []string
	for _, n := range []string{id.PreferredUsername, id.Email} {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "", nil
	}
	shown := names[0]
	if r.IdentityTenant != "" && !strings.EqualFold(id.TenantID, r.IdentityTenant) {
		return "", &Error{
			Msg: fmt.Sprintf("signed in as %s, an account of tenant %q, but account %s uses %s, which takes personal Microsoft accounts only (tenant %s)",
				shown, id.TenantID, c.Account, r.Provider, r.IdentityTenant),
			Hint: fmt.Sprintf("for a work or school account: mailkey add %s --provider microsoft, then: mailkey login %s;\nor log in again with a personal account (Outlook.com, Hotmail, Live)", c.Account, c.Account),
		}
	}
	for _, n := range names {
		if strings.EqualFold(n, r.Email) {
			return n, nil
		}
	}
	return "", &Error{
		Msg:  fmt.Sprintf("signed in as %s, but account %s is for %s", shown, c.Account, r.Email),
		Hint: fmt.Sprintf("log in again and choose %s (sign out of %s in the browser first),\nor change the account's address: mailkey add %s --email %s", r.Email, shown, c.Account, shown),
	}
}

// proveByMailLogin logs in to the account's mail server as its address
// with the new access token, the way mailkey serve and mailkey test do: a
// server that accepts it proves the grant is the address's.
func (c *loginCmd) proveByMailLogin(ctx context.Context, a *acct, tok *oauth.Token) (string, error) {
	r := a.acc.R()
	srv, ok := identityServer(r)
	if !ok {
		return "", errorf(fmt.Sprintf("mailkey add %s --imap imaps://HOST:993, then: mailkey login %s", c.Account, c.Account),
			"cannot tell who signed in: %s names nobody in its tokens, and account %s has no mail server to log in to; the tokens were not saved", r.Provider, c.Account)
	}
	conf, err := a.acc.TLSConfig(srv.Host)
	if err != nil {
		return "", &Error{Msg: fmt.Sprintf("cannot tell who signed in: %v", err), Hint: "check ca_file: mailkey config check", Err: err}
	}
	s, err := upstream.For(srv.Protocol)(ctx, &upstream.Options{
		Server: srv, TLS: conf, User: r.Email, SASL: r.SASL,
		Token: func(context.Context) (string, error) { return tok.AccessToken, nil },
	})
	var re *upstream.ReplyError
	switch {
	case errors.As(err, &re) && re.Refused:
		return "", &Error{
			Msg: fmt.Sprintf("%s refused the new token for %s (%s): the browser signed in to another account than %s; the tokens were not saved",
				srv, r.Email, re.Reply, r.Email),
			Hint: fmt.Sprintf("log in again and choose %s (sign out of other accounts in the browser first): mailkey login %s", r.Email, c.Account),
			Err:  err,
		}
	case err != nil:
		return "", &Error{
			Msg:  fmt.Sprintf("cannot tell who signed in: logging in to %s as %s failed: %v; the tokens were not saved", srv, r.Email, err),
			Hint: fmt.Sprintf("check the account's %s server and the network, then: mailkey login %s", srv.Protocol, c.Account),
			Err:  err,
		}
	}
	s.Close()
	return r.Email, nil
}

// identityServer picks the server a mail login proves the identity on:
// the first the account is used for, IMAP first.
func identityServer(r *config.Resolved) (provider.Server, bool) {
	for _, p := range provider.Protocols {
		if srv, ok := r.Servers[p]; ok && (len(r.Protocols) == 0 || slices.Contains(r.Protocols, p)) {
			return srv, true
		}
	}
	return provider.Server{}, false
}
