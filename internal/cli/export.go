package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/mailkey/mailkey/internal/atomicfile"
	"github.com/mailkey/mailkey/internal/migrate"
	"github.com/mailkey/mailkey/internal/store"
)

type exportCmd struct {
	Accounts      []string `arg:"" help:"The accounts to export."`
	Recipient     []string `name:"recipient" short:"r" help:"Encrypt to this age public key (age1…) instead of a passphrase (repeatable)." placeholder:"KEY"`
	PassphraseCmd string   `name:"passphrase-cmd" help:"Command printing the passphrase to encrypt with (default: asked at the terminal, else the first line of standard input)." placeholder:"CMD"`
	Output        string   `name:"output" short:"o" help:"Write the bundle to FILE (mode 0600) instead of standard output." placeholder:"FILE" type:"path"`
}

func (c *exportCmd) Run(e *env) error {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	st, err := e.openStore()
	if err != nil {
		return err
	}
	var accounts []migrate.BundleAccount
	var tokenless []string
	for _, name := range c.Accounts {
		conf, err := cfg.Account(name)
		if err != nil {
			return err
		}
		rec, err := st.Get(e.ctx, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			rec = nil
			tokenless = append(tokenless, name)
		case err != nil:
			return storeError(err)
		}
		accounts = append(accounts, migrate.BundleAccount{Name: name, Settings: conf.Settings(), Record: rec})
	}
	if c.Output != "" {
		if _, err := os.Lstat(c.Output); err == nil {
			return errorf("name a new file, or remove it first: rm "+c.Output, "%s exists; nothing was exported", c.Output)
		}
	}

	var recipients []age.Recipient
	how := "a passphrase"
	for _, r := range c.Recipient {
		rs, err := age.ParseRecipients(strings.NewReader(r))
		if err != nil || len(rs) != 1 {
			return errorf("give an age public key, as age-keygen -y prints it (age1…)", "--recipient %q is not an age public key", r)
		}
		recipients = append(recipients, rs...)
	}
	if len(recipients) > 0 {
		how = fmt.Sprintf("%d age key(s)", len(recipients))
	} else {
		var line *string
		pass, err := readSecret(e, c.PassphraseCmd, "--passphrase-cmd", "passphrase for the bundle", true, &line)
		if err != nil {
			return err
		}
		r, err := age.NewScryptRecipient(pass)
		if err != nil {
			return errorf("give a passphrase that is not empty", "the passphrase is empty")
		}
		recipients = append(recipients, r)
	}

	var out bytes.Buffer
	if err := migrate.WriteBundle(&out, accounts, time.Now(), recipients...); err != nil {
		return fmt.Errorf("cannot write the bundle: %w", err)
	}
	where := "standard output"
	if c.Output != "" {
		if err := atomicfile.WriteFile(c.Output, out.Bytes(), 0o600); err != nil {
			return errorf("check the folder, then run the command again", "cannot write %s: %v", c.Output, describePathErr(err))
		}
		where = c.Output
	} else if _, err := e.stdout.Write(out.Bytes()); err != nil && !errors.Is(err, fs.ErrClosed) {
		return fmt.Errorf("cannot write the bundle: %w", err)
	}
	e.notef("exported %s to %s, encrypted with %s", strings.Join(c.Accounts, ", "), where, how)
	for _, name := range tokenless {
		e.warnf("account %s holds no tokens here: the bundle has its settings only", name)
	}
	if len(tokenless) < len(c.Accounts) {
		e.warnf("the bundle holds refresh tokens: once it is imported, use each account in one place only, since a provider that rotates refresh tokens revokes the grant when a replaced one is used again;" +
			" to forget them here without revoking them: mailkey logout ACCOUNT --local-only")
	}
	return nil
}
