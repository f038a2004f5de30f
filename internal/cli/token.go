package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/mailkey/mailkey/internal/sasl"
)

type tokenCmd struct {
	Account string        `arg:"" help:"The account whose token to print."`
	SASL    string        `help:"Print the base64 SASL initial response instead: xoauth2 or oauthbearer." enum:"xoauth2,oauthbearer," default:""`
	JSON    bool          `help:"Print JSON with the token, its expiry and the account."`
	Wait    time.Duration `help:"How long to wait for the provider when the stored token has expired (0: until the refresh ends). A valid token is printed at once." default:"30s"`
}

// tokenJSON is the --json output: the one place besides the bare token
// where a secret is printed, on purpose, to stdout only.
type tokenJSON struct {
	Account     string    `json:"account"`
	Email       string    `json:"email"`
	Mailbox     string    `json:"mailbox,omitempty"`
	AccessToken string    `json:"access_token,omitempty"`
	SASL        string    `json:"sasl,omitempty"`
	Mechanism   string    `json:"mechanism,omitempty"`
	TokenType   string    `json:"token_type"`
	Expiry      time.Time `json:"expiry,omitzero"`
	ExpiresIn   int64     `json:"expires_in,omitempty"`
}

func (c *tokenCmd) Run(e *env) error {
	// A running agent holds the opened store: asking it costs no key
	// derivation. The configuration is read first, for the same errors.
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	conf, err := cfg.Account(c.Account)
	if err != nil {
		return err
	}
	rec, ok, err := tokenFromAgent(e, conf, c.Wait)
	if err != nil {
		return err
	}
	if !ok {
		// No discovery unless a token must be fetched: mail clients call
		// this for every connection, and a valid stored token needs no
		// provider.
		a, err := e.openConfigured(cfg, conf)
		if err != nil {
			return err
		}
		if rec, err = a.helperToken(e, c.Wait); err != nil {
			return err
		}
	}
	out := tokenJSON{Account: c.Account, Email: conf.Email, Mailbox: conf.Mailbox, TokenType: "Bearer", Expiry: rec.Expiry}
	if !rec.Expiry.IsZero() {
		out.ExpiresIn = int64(time.Until(rec.Expiry).Seconds())
	}
	var text string
	if c.SASL != "" {
		ir, err := sasl.InitialResponseBase64(c.SASL, conf.User(), rec.AccessToken, "", 0)
		if err != nil {
			return errorf("use --sasl xoauth2 or --sasl oauthbearer", "%v", err)
		}
		out.SASL, out.Mechanism, text = ir, c.SASL, ir
	} else {
		out.AccessToken, text = rec.AccessToken, rec.AccessToken
	}
	if c.JSON {
		return e.writeJSON(out)
	}
	_, err = fmt.Fprintln(e.stdout, text)
	return err
}

func contextWithTimeout(e *env, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(e.ctx)
	}
	return context.WithTimeout(e.ctx, d)
}
