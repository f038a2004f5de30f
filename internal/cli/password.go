package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/mailkey/mailkey/internal/apppass"
	"github.com/mailkey/mailkey/internal/config"
)

type passwordCmd struct {
	Add    passwordAddCmd    `cmd:"" help:"Create an app password for an account and print it, once."`
	List   passwordListCmd   `cmd:"" help:"List app passwords: labels, creation and last use."`
	Remove passwordRemoveCmd `cmd:"" help:"Revoke an app password; a running mailkey serve stops accepting it."`
}

type passwordAddCmd struct {
	Account string `arg:"" help:"The account the password opens."`
	Label   string `help:"A name for the password, such as the client that uses it (default app, app-2, …)."`
}

type passwordListCmd struct {
	Account string `arg:"" optional:"" help:"Show only this account's passwords."`
	JSON    bool   `help:"Print JSON."`
}

type passwordRemoveCmd struct {
	Account string `arg:"" help:"The account."`
	Label   string `arg:"" help:"The password's label or id, as password list shows them."`
}

// passwordFile checks that the account is configured and opens the app
// password file of the state folder.
func (e *env) passwordFile(name string) (*apppass.File, *config.Account, error) {
	var a *config.Account
	if name != "" {
		cfg, err := e.loadConfig()
		if err != nil {
			return nil, nil, err
		}
		if a, err = cfg.Account(name); err != nil {
			return nil, nil, err
		}
	}
	st, err := e.openStore()
	if err != nil {
		return nil, nil, err
	}
	return apppass.Open(st.Dir()), a, nil
}

func passwordError(err error, account string) error {
	var pe *apppass.PermissionError
	var ce *apppass.CorruptError
	switch {
	case errors.As(err, &pe):
		return &Error{Msg: err.Error(), Err: err}
	case errors.As(err, &ce):
		return &Error{Msg: err.Error(), Hint: fmt.Sprintf("move it aside and add the passwords again: mv %s %s.bad", ce.Path, ce.Path), Err: err}
	case errors.Is(err, apppass.ErrBadLabel):
		return &Error{Msg: "invalid label: 1 to 64 characters, no control characters or surrounding spaces", Hint: "mailkey password add " + account + " --label NAME", Err: err}
	case errors.Is(err, apppass.ErrNotFound):
		return &Error{Msg: fmt.Sprintf("account %s has no app password with that label or id", account), Hint: "mailkey password list " + account, Err: err}
	}
	return err
}

func (c *passwordAddCmd) Run(e *env) error {
	f, a, err := e.passwordFile(c.Account)
	if err != nil {
		return err
	}
	pw, info, err := f.Add(e.ctx, c.Account, c.Label)
	if errors.Is(err, apppass.ErrLabelTaken) {
		return &Error{Msg: fmt.Sprintf("account %s already has an app password labelled %q", c.Account, c.Label),
			Hint: "choose another --label, or see them with: mailkey password list " + c.Account, Err: err}
	}
	if err != nil {
		return passwordError(err, c.Account)
	}
	if _, err := fmt.Fprintln(e.stdout, pw); err != nil {
		return err
	}
	e.notef("app password %q added for account %s; it is shown only this once", info.Label, c.Account)
	e.notef("mail clients log in to mailkey serve as %s (or %s) with it", c.Account, a.User())
	return nil
}

func (c *passwordListCmd) Run(e *env) error {
	f, _, err := e.passwordFile(c.Account)
	if err != nil {
		return err
	}
	list, err := f.List(c.Account)
	if err != nil {
		return passwordError(err, c.Account)
	}
	if c.JSON {
		if list == nil {
			list = []apppass.Info{}
		}
		return e.writeJSON(list)
	}
	if len(list) == 0 {
		e.notef("no app passwords yet: mailkey password add ACCOUNT")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tLABEL\tID\tCREATED\tLAST USED")
	for _, p := range list {
		last := "never"
		if !p.LastUsed.IsZero() {
			last = p.LastUsed.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Account, p.Label, p.ID, p.Created.Local().Format(time.DateTime), last)
	}
	return tw.Flush()
}

func (c *passwordRemoveCmd) Run(e *env) error {
	f, _, err := e.passwordFile(c.Account)
	if err != nil {
		return err
	}
	info, err := f.Remove(e.ctx, c.Account, c.Label)
	if err != nil {
		return passwordError(err, c.Account)
	}
	e.notef("app password %q (%s) of account %s removed", info.Label, info.ID, c.Account)
	return nil
}
