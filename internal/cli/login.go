package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mailkey/mailkey/internal/audit"
	"github.com/mailkey/mailkey/internal/check"
	"github.com/mailkey/mailkey/internal/oauth"
	"github.com/mailkey/mailkey/internal/store"
)

type loginCmd struct {
	Account string        `arg:"" help:"The account to authorize."`
	Device  bool          `help:"Use the device code flow: approve on another device." xor:"mode"`
	Paste   bool          `help:"No browser here: open the URL elsewhere and paste the redirect back." xor:"mode"`
	Import  bool          `help:"Read a refresh token minted elsewhere from standard input." xor:"mode"`
	Backup  bool          `name:"from-backup" help:"Restore an unreadable record from its backup, when the backup holds the same refresh token; asks the provider nothing." xor:"mode"`
	NoQR    bool          `name:"no-qr" help:"With --device, do not draw a QR code."`
	Timeout time.Duration `help:"How long to wait for the browser or device approval." default:"5m"`
}

// loginFlow names the flow of a login for the audit trail.
func loginFlow(c *loginCmd) string {
	switch {
	case c.Device:
		return "device"
	case c.Paste:
		return "paste"
	case c.Import:
		return "import"
	}
	return "loopback"
}

func (c *loginCmd) Run(e *env) error {
	if c.Backup {
		return c.restore(e)
	}
	a, err := e.openAccount(c.Account)
	if err != nil {
		return err
	}
	r, client := a.acc.R(), a.acc.OAuth()
	if a.acc.AppOnly() {
		if c.Device || c.Paste || c.Import {
			return errorf("mailkey token "+c.Account, "account %s uses the %s flow: nobody logs in, so --device, --paste and --import do not apply", c.Account, r.Flow)
		}
		// Nothing to authorize: prove the credentials work by minting a token.
		if err := c.setAside(e.ctx, e, a.st); err != nil {
			return err
		}
		if _, err := a.st.Get(e.ctx, c.Account); err == nil {
			if err := a.st.Delete(e.ctx, c.Account); err != nil {
				return storeError(err)
			}
		}
		rec, err := a.token(e.ctx)
		if err != nil {
			return err
		}
		e.notef("account %s uses the %s flow and needs no login; a token was fetched, valid until %s", c.Account, r.Flow, rec.Expiry.Local().Format(time.DateTime))
		return nil
	}
	if r.ClientID == "" {
		return errorf("mailkey add "+c.Account+" --client-id ID", "account %s has no client_id", c.Account)
	}

	var tok *oauth.Token
	switch {
	case c.Device:
		if !r.DeviceAllowed {
			return errorf("mailkey login "+c.Account+"   (browser on this machine)\nmailkey login "+c.Account+" --paste   (no browser here)",
				"%s does not allow the device flow here: %s", r.Provider, r.DeviceRefusal)
		}
		// The wait is bounded by the device flow itself, so that running
		// out of it is told from the provider failing.
		tok, err = client.DeviceLogin(e.ctx, e.stderr, oauth.DeviceOptions{QR: !c.NoQR, Wait: c.Timeout})
	case c.Paste:
		ctx, cancel := contextWithTimeout(e, c.Timeout)
		defer cancel()
		tok, err = client.PasteLogin(ctx, e.stdin, e.stderr)
		if !isTerminal(e.stdin) {
			// No terminal echoed the pasted line: end the "URL: " prompt,
			// so that what follows starts a line of its own.
			fmt.Fprintln(e.stderr)
		}
	case c.Import:
		rt, rerr := readSecretLine(e.stdin)
		if rerr != nil {
			return errorf("pipe the refresh token in: mailkey login "+c.Account+" --import < file", "%v", rerr)
		}
		// A refresh rotates the imported token: once sent, it is seen
		// through to the store whatever signal comes.
		ctx, end := e.seeThrough(c.Account)
		defer end()
		tok, err = client.Refresh(ctx, rt)
		if err == nil && tok.RefreshToken == "" {
			tok.RefreshToken = rt
		}
	default:
		tok, err = client.LoopbackLogin(e.ctx, oauth.LoopbackOptions{OpenBrowser: openBrowser, Out: e.stderr, Timeout: c.Timeout})
	}
	if err != nil {
		return loginError(c.Account, r.Provider, err)
	}
	// The new tokens exist only in this process now: checking who signed
	// in and storing them is seen through whatever signal comes.
	ctx, end := e.seeThrough(c.Account)
	defer end()

	rec := a.acc.Record(tok, time.Now())
	if rec.Identity, err = c.checkIdentity(ctx, a, tok); err != nil {
		return err
	}
	if err := c.setAside(ctx, e, a.st); err != nil {
		return err
	}
	if err := a.mgr.Save(ctx, rec); err != nil {
		return storeError(err)
	}
	end()
	who := r.Email
	if rec.Identity != "" {
		who = rec.Identity
	}
	e.audit(a.cfg, "login").Record(audit.Event{Event: audit.Login, Account: c.Account, Detail: "flow " + loginFlow(c) + ", signed in as " + who})
	e.notef("logged in: account %s (%s); tokens saved, protected by %s", c.Account, who, a.st.Protection())
	if rec.RefreshToken == "" {
		e.warnf("the provider gave no refresh token: you will have to log in again when the access token expires")
	}
	if w := refreshWarning(rec, time.Now()); w != "" {
		e.warnf("%s", w)
	}
	return nil
}

// setAside moves an unreadable record out of the way of the new login's,
// keeping the file, so that a login is the way out of a damaged record.
func (c *loginCmd) setAside(ctx context.Context, e *env, st *store.FileStore) error {
	_, err := st.Get(ctx, c.Account)
	var ce *store.CorruptError
	if !errors.As(err, &ce) {
		return nil
	}
	aside, err := st.Quarantine(ctx, c.Account)
	if err != nil {
		return storeError(err)
	}
	e.notef("the unreadable record of account %s was moved aside to %s", c.Account, aside)
	return nil
}

// restore is login --from-backup: the backup replaces an unreadable (or
// missing) record only when it holds the refresh token that record last
// held, so restoring it spends no token the provider has replaced.
func (c *loginCmd) restore(e *env) error {
	a, err := e.openAccountDeferred(c.Account)
	if err != nil {
		return err
	}
	if rec, err := a.st.Get(e.ctx, c.Account); err == nil {
		if !rec.Recovered.IsZero() {
			e.notef("account %s: the record was recovered from an interrupted write at %s", c.Account, rec.Recovered.Local().Format(time.DateTime))
		}
		e.notef("the record of account %s (written %s) reads fine; the backup was not used", c.Account, rec.Updated.Local().Format(time.DateTime))
		return nil
	}
	rec, err := a.st.Recover(e.ctx, c.Account)
	var ce *store.CorruptError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &Error{Msg: fmt.Sprintf("account %s has no record and no backup that holds its last refresh token", c.Account),
			Hint: "mailkey login " + c.Account, Err: err}
	case errors.As(err, &ce):
		return &Error{Msg: err.Error(), Hint: "log in again (the unreadable file is kept): mailkey login " + c.Account, Err: err}
	case err != nil:
		return storeError(err)
	}
	e.notef("account %s restored from its backup (written %s); an unreadable record is kept, moved aside", c.Account, rec.Updated.Local().Format(time.DateTime))
	return nil
}

func readSecretLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 64<<10)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("cannot read standard input")
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return "", fmt.Errorf("standard input held no refresh token")
	}
	return line, nil
}

// isDeviceError reports whether err comes from the device flow's polling.
func isDeviceError(err error) bool {
	var oe *oauth.Error
	return errors.As(err, &oe) && oe.Op == oauth.OpDeviceLogin
}

// loginError words a failed flow with the next step. Errors with a
// Microsoft AADSTS code get the cause and fix mailkey test gives them.
func loginError(name, preset string, err error) error {
	hint := "try again: mailkey login " + name
	d := check.Diagnose(&check.Observation{Step: check.StepToken, Provider: preset, Account: name, TokenErr: err})
	switch {
	case d != nil && strings.HasPrefix(d.ID, "aadsts-"):
		return &Error{Msg: fmt.Sprintf("login for account %s failed: %v\n%s", name, err, d.Cause), Hint: d.Fix, Err: err}
	case errors.Is(err, oauth.ErrTimeout) && isDeviceError(err):
		hint = "enter the code in time, or wait longer: mailkey login " + name + " --device --timeout 15m"
	case errors.Is(err, oauth.ErrTimeout):
		hint = "open the printed URL and finish the sign-in in time, or use: mailkey login " + name + " --paste"
	case errors.Is(err, oauth.ErrAccessDenied):
		hint = "approve the request in the browser, or ask your administrator to consent to the app"
	case errors.Is(err, oauth.ErrStateMismatch):
		hint = "paste the redirect of this login (not an older one): mailkey login " + name + " --paste"
	case errors.Is(err, oauth.ErrExpiredToken):
		hint = "approve the code sooner: mailkey login " + name + " --device"
	}
	var oe *oauth.Error
	if errors.As(err, &oe) && oe.Temporary() {
		hint = "the provider could not be reached or failed; try again in a moment: mailkey login " + name
	}
	return &Error{Msg: fmt.Sprintf("login for account %s failed: %v", name, err), Hint: hint, Err: err}
}
