package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"golang.org/x/oauth2"
	"golang.org/x/term"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/migrate"
	"github.com/mailkey/mailkey/internal/oauth"
	"github.com/mailkey/mailkey/internal/store"
)

// importFileLimit bounds the file mailkey import reads: token files,
// configurations and bundles are a few KiB.
const importFileLimit = 4 << 20

type importCmd struct {
	File     string   `arg:"" help:"The file: a token file of mutt_oauth2.py, the configuration of email-oauth2-proxy, or a bundle of mailkey export." type:"path"`
	Accounts []string `arg:"" optional:"" help:"Accounts to import, by their name in the file (an address, or a mailkey account's name); default: every one that holds tokens."`

	As            string `name:"as" help:"Name of the new account, when one account is imported (default: its name in the file)." placeholder:"NAME"`
	Force         bool   `help:"Replace an account or tokens of the same name that exist here."`
	DecryptCmd    string `name:"decrypt-cmd" help:"Command that decrypts the file, standard input to standard output, as mutt_oauth2.py's DECRYPTION_PIPE (e.g. 'gpg --decrypt')." placeholder:"CMD"`
	PasswordCmd   string `name:"password-cmd" help:"Command printing the password email-oauth2-proxy encrypted the tokens with (the mail client's password for the proxy)." placeholder:"CMD"`
	CacheStore    string `name:"cache-store" help:"The --cache-store file of email-oauth2-proxy, when its tokens are kept apart from its configuration." placeholder:"FILE" type:"path"`
	Identity      string `name:"identity" short:"i" help:"An age identity file that opens a bundle exported with --recipient." placeholder:"FILE" type:"path"`
	PassphraseCmd string `name:"passphrase-cmd" help:"Command printing the passphrase a bundle was exported with." placeholder:"CMD"`

	accountFlags `embed:""`

	// stdinLine is the secret read from a standard input that is no
	// terminal: it can be read once only.
	stdinLine *string
}

// prepared is one account an import writes, checked before anything is.
type prepared struct {
	name     string
	grant    *migrate.Grant
	settings []config.KV
	rec      *store.Record
	given    []string // keys set by flags
	kept     []string // keys of a replaced account the import does not set
}

func (c *importCmd) Run(e *env) error {
	path, err := configPath()
	if err != nil {
		return err
	}
	data, err := readImportFile(c.File)
	if err != nil {
		return err
	}
	opts := migrate.Options{Names: c.Accounts, Password: c.password(e), Identities: c.identities(e)}
	if c.DecryptCmd != "" {
		opts.Decrypt = func(b []byte) ([]byte, error) { return c.decrypt(e, b) }
	}
	if c.CacheStore != "" {
		if opts.Cache, err = readImportFile(c.CacheStore); err != nil {
			return err
		}
	}
	format, grants, err := migrate.Read(data, opts)
	if err != nil {
		return c.readError(format, err)
	}
	if c.As != "" && len(grants) != 1 {
		return errorf("name the account to import: mailkey import "+c.File+" ACCOUNT --as "+c.As,
			"--as names one account, and the %s holds %d", format, len(grants))
	}
	flags, err := c.settings(e)
	if err != nil {
		return err
	}

	cfg, err := config.Load(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return configError(err)
		}
		cfg = &config.Config{File: path, RefreshMargin: config.DefaultRefreshMargin}
	}

	// Everything is read, mapped, checked and resolved before anything is
	// written: a refused import leaves the configuration and the store as
	// they were. The store is opened (and on first use, its key made) only
	// once the configuration would take every account.
	var todo []*prepared
	var confs []*config.Account
	for _, g := range grants {
		p, conf, err := c.prepare(path, cfg, g, flags)
		if err != nil {
			return err
		}
		todo = append(todo, p)
		confs = append(confs, conf)
	}
	st, err := e.openStore()
	if err != nil {
		return err
	}
	for _, p := range todo {
		if _, err := st.Get(e.ctx, p.name); (err == nil || !errors.Is(err, store.ErrNotFound)) && !c.Force {
			return errorf("import it under another name: mailkey import "+c.File+" --as NAME\nor replace them: mailkey import "+c.File+" --force",
				"account %s already holds tokens here; nothing was imported", p.name)
		}
	}
	set := e.accounts(cfg, confs, st, e.logger())
	now := time.Now()
	for _, p := range todo {
		acc := set.Account(p.name)
		if err := acc.Resolve(e.ctx); err != nil {
			return resolveError(acc.Conf, err, false)
		}
		p.rec = importedRecord(acc.Record, p, now)
	}

	for _, p := range todo {
		if err := config.AddAccount(path, p.name, p.settings); err != nil {
			return configError(flagHints(err))
		}
		if p.rec != nil {
			if err := set.Manager().Save(e.ctx, p.rec); err != nil {
				return storeError(err)
			}
		}
		c.report(e, format, path, st, p)
	}
	return nil
}

// prepare maps one grant to the account it becomes, refusing to replace
// one without --force, and checks its settings as mailkey add would.
func (c *importCmd) prepare(path string, cfg *config.Config, g *migrate.Grant, flags []config.KV) (*prepared, *config.Account, error) {
	p := &prepared{name: g.Name, grant: g}
	if c.As != "" {
		p.name = c.As
	}
	if err := config.CheckAccountName(p.name); err != nil {
		return nil, nil, errorf("give the account a name mailkey takes: mailkey import "+c.File+" --as NAME", "cannot import %s as an account: %v", g.Name, err)
	}
	p.settings = slices.Clone(g.Settings)
	for _, kv := range flags {
		p.given = append(p.given, kv.Key)
		p.settings = slices.DeleteFunc(p.settings, func(s config.KV) bool { return s.Key == kv.Key })
		p.settings = append(p.settings, kv)
	}
	if old, err := cfg.Account(p.name); err == nil {
		if !c.Force {
			return nil, nil, errorf("import it under another name: mailkey import "+c.File+" --as NAME\nor replace it: mailkey import "+c.File+" --force",
				"account %s already exists in %s; nothing was imported", p.name, path)
		}
		for _, kv := range old.Settings() {
			if !slices.ContainsFunc(p.settings, func(s config.KV) bool { return s.Key == kv.Key }) {
				p.kept = append(p.kept, kv.Key)
			}
		}
	}
	conf, err := config.PreviewAccount(path, p.name, p.settings)
	if err != nil {
		return nil, nil, configError(flagHints(err))
	}
	return p, conf, nil
}

// importedRecord is the record an import stores: a bundle's as mailkey
// kept it, else one made by the account from the file's tokens. The
// lifetime of an imported access token is not known, so Issued stays zero.
func importedRecord(record func(*oauth.Token, time.Time) *store.Record, p *prepared, now time.Time) *store.Record {
	g := p.grant
	if g.Record != nil {
		rec := *g.Record
		rec.Account = p.name
		rec.Recovered, rec.SupersededBy = time.Time{}, ""
		return &rec
	}
	if g.RefreshToken == "" && g.AccessToken == "" {
		return nil
	}
	tok := &oauth.Token{Token: oauth2.Token{AccessToken: g.AccessToken, TokenType: "Bearer", RefreshToken: g.RefreshToken, Expiry: g.Expiry}, Scopes: g.Scopes}
	if g.AccessToken == "" {
		tok.TokenType = ""
	}
	rec := record(tok, now)
	rec.Issued, rec.LastRefresh = time.Time{}, time.Time{}
	return rec
}

// report says what one import did, what was mapped from where, and what
// the user should check; never a secret.
func (c *importCmd) report(e *env, format migrate.Format, path string, st *store.FileStore, p *prepared) {
	what := "settings saved in " + path
	if p.rec != nil {
		what = "tokens saved, protected by " + st.Protection() + "; " + what
	}
	e.notef("imported account %s from the %s %s: %s", p.name, format, c.File, what)
	for _, m := range p.grant.Mapped {
		e.notef("  mapped: %s", m)
	}
	if len(p.given) > 0 {
		e.notef("  from the command line: %s", strings.Join(p.given, ", "))
	}
	for _, ch := range p.grant.Check {
		if slices.ContainsFunc(ch.Keys, func(k string) bool { return slices.Contains(p.given, k) }) {
			continue
		}
		line := "  check: " + ch.Text
		if len(ch.Keys) > 0 {
			var fl []string
			for _, k := range ch.Keys {
				fl = append(fl, "--"+strings.ReplaceAll(k, "_", "-")+" …")
			}
			line += " (to set: mailkey add " + p.name + " " + strings.Join(fl, ", ") + ")"
		}
		e.notef("%s", line)
	}
	if len(p.kept) > 0 {
		e.notef("  check: the replaced account's %s stay as they were, since the %s does not set them", strings.Join(p.kept, ", "), format)
	}
	if p.rec != nil && format != migrate.Bundle {
		e.warnf("the %s still holds the same refresh token: stop using it for %s, since a provider that rotates refresh tokens revokes the whole grant when a replaced one is used again", format, p.name)
	}
	e.notef("next: mailkey test %s", p.name)
}

// readError words an import that could not read its file.
func (c *importCmd) readError(format migrate.Format, err error) error {
	var ce *migrate.CorruptError
	var nt *migrate.NoTokensError
	var nf *migrate.NotInFileError
	var ue *migrate.UnsupportedError
	var ee *Error
	again := "mailkey import " + c.File
	switch {
	case errors.As(err, &ee):
		return err
	case errors.Is(err, migrate.ErrUnknownFormat):
		return &Error{Msg: fmt.Sprintf("cannot import %s: it is %v; nothing was imported", c.File, err), Err: err,
			Hint: "give mutt_oauth2.py's token file, email-oauth2-proxy's emailproxy.config, or a file written by mailkey export;\nan encrypted token file needs its decryption: " + again + " --decrypt-cmd 'gpg --decrypt'"}
	case errors.Is(err, migrate.ErrEncrypted):
		return &Error{Msg: fmt.Sprintf("cannot import %s: %v; nothing was imported", c.File, err), Err: err,
			Hint: "give the command mutt_oauth2.py decrypts it with (its DECRYPTION_PIPE): " + again + " --decrypt-cmd 'gpg --decrypt'"}
	case errors.Is(err, migrate.ErrWrongPassword):
		return &Error{Msg: fmt.Sprintf("cannot import %s: %v; nothing was imported", c.File, err), Err: err,
			Hint: "give the password the mail client logs in to email-oauth2-proxy with for that account, then: " + again}
	case errors.Is(err, migrate.ErrWrongPassphrase):
		hint := "give the passphrase mailkey export was given, then: " + again
		if c.Identity != "" {
			hint = "give the identity file of the key the bundle was exported to (--recipient): " + again + " -i FILE"
		}
		return &Error{Msg: fmt.Sprintf("cannot import %s: %v; nothing was imported", c.File, err), Err: err, Hint: hint}
	case errors.As(err, &ce):
		return &Error{Msg: fmt.Sprintf("cannot import %s: %v; nothing was imported", c.File, err), Err: err,
			Hint: "check that " + c.File + " is the file the other tool writes, whole and unchanged"}
	case errors.As(err, &nt):
		return &Error{Msg: fmt.Sprintf("cannot import %s: %v; nothing was imported", c.File, err), Err: err,
			Hint: "use the account once with the other tool so that it holds a grant, or log in here: mailkey add ACCOUNT … then mailkey login ACCOUNT"}
	case errors.As(err, &nf):
		return &Error{Msg: fmt.Sprintf("cannot import %s: %v; nothing was imported", c.File, err), Err: err,
			Hint: "the file's accounts: " + strings.Join(nf.Known, ", ")}
	case errors.As(err, &ue):
		return &Error{Msg: err.Error() + "; nothing was imported", Err: err,
			Hint: "add it with its flow instead: mailkey add " + ue.Account + " --flow client_credentials …"}
	}
	return &Error{Msg: fmt.Sprintf("cannot import %s: %v; nothing was imported", c.File, err), Err: err, Hint: "check the file, then: " + again}
}

// readImportFile reads a file to import, refusing what is too large to be
// one.
func readImportFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, errorf("check the path: ls -l "+path, "cannot read %s: %v", path, describePathErr(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, importFileLimit+1))
	if err != nil {
		return nil, errorf("check the path: ls -l "+path, "cannot read %s: %v", path, describePathErr(err))
	}
	if len(data) > importFileLimit {
		return nil, errorf("give the token file or configuration itself", "%s is larger than %d MiB: not a file mailkey imports", path, importFileLimit>>20)
	}
	return data, nil
}

// describePathErr words an error of os without repeating the path.
func describePathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// decrypt runs --decrypt-cmd with the file on its standard input.
func (c *importCmd) decrypt(e *env, data []byte) ([]byte, error) {
	out, err := runCommand(e, c.DecryptCmd, data)
	if err != nil {
		return nil, errorf("check that the command decrypts the file by itself: "+c.DecryptCmd+" < "+c.File+" > /dev/null",
			"cannot import %s: --decrypt-cmd %v; nothing was imported", c.File, err)
	}
	return out, nil
}

// password returns what asks for an email-oauth2-proxy account's password.
func (c *importCmd) password(e *env) func(account string) (string, error) {
	return func(account string) (string, error) {
		return c.secret(e, c.PasswordCmd, "--password-cmd", "password of "+account+" at email-oauth2-proxy")
	}
}

// identities returns what opens a bundle: a passphrase's scrypt identity,
// or the identities in --identity.
func (c *importCmd) identities(e *env) func(passphrase bool) ([]age.Identity, error) {
	return func(passphrase bool) ([]age.Identity, error) {
		if !passphrase {
			if c.Identity == "" {
				return nil, errorf("give the identity file of the key it was exported to: mailkey import "+c.File+" -i FILE",
					"cannot import %s: the bundle is encrypted to a key, not a passphrase; nothing was imported", c.File)
			}
			data, err := os.ReadFile(c.Identity)
			if err != nil {
				return nil, errorf("check the path: ls -l "+c.Identity, "cannot read %s: %v", c.Identity, describePathErr(err))
			}
			ids, err := age.ParseIdentities(bytes.NewReader(data))
			if err != nil {
				// age's parse errors may quote a line of the key file.
				return nil, errorf("give an age identity file (as age-keygen writes)", "%s holds no age identity", c.Identity)
			}
			return ids, nil
		}
		pass, err := c.secret(e, c.PassphraseCmd, "--passphrase-cmd", "passphrase of the bundle")
		if err != nil {
			return nil, err
		}
		id, err := age.NewScryptIdentity(pass)
		if err != nil {
			return nil, errorf("give the passphrase the bundle was exported with", "the passphrase is empty")
		}
		return []age.Identity{id}, nil
	}
}

// secret gets a password or passphrase: from cmd (named by flag) when set,
// else from a prompt when standard input is a terminal, else from the
// first line of standard input.
func (c *importCmd) secret(e *env, cmd, flag, what string) (string, error) {
	if c.ClientSecret == "-" && cmd == "" && !isTerminal(e.stdin) {
		return "", errorf("give one of them with a command: "+flag+" CMD, or --client-secret-cmd CMD", "the client secret and the %s cannot both come from standard input", what)
	}
	return readSecret(e, cmd, flag, what, false, &c.stdinLine)
}

// readSecret gets a secret as secret describes; confirm asks twice at a
// terminal. A line read from a standard input that is no terminal is kept
// in *line for later calls.
func readSecret(e *env, cmd, flag, what string, confirm bool, line **string) (string, error) {
	if cmd != "" {
		out, err := runCommand(e, cmd, nil)
		if err != nil {
			return "", errorf("check that the command prints the "+what+" alone: "+cmd, "%s %v", flag, err)
		}
		s, _, _ := strings.Cut(string(out), "\n")
		if s = strings.TrimSuffix(s, "\r"); s == "" {
			return "", errorf("check that the command prints the "+what+" alone: "+cmd, "%s printed an empty first line", flag)
		}
		return s, nil
	}
	if f, ok := e.stdin.(*os.File); ok && isTerminal(f) {
		s, err := prompt(e, f, "the "+what)
		if err != nil {
			return "", err
		}
		if confirm {
			again, err := prompt(e, f, "the "+what+" again")
			if err != nil {
				return "", err
			}
			if again != s {
				return "", errorf("type the same "+what+" twice", "the two entries differ")
			}
		}
		if s == "" {
			return "", errorf("type the "+what, "no %s was typed", what)
		}
		return s, nil
	}
	if *line == nil {
		l, err := bufio.NewReader(io.LimitReader(e.stdin, 64<<10)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", errorf("pipe it in, or give "+flag+" CMD", "cannot read the %s from standard input", what)
		}
		l = strings.TrimRight(l, "\r\n")
		*line = &l
	}
	if **line == "" {
		return "", errorf("pipe it in: printf '%s\\n' \"$SECRET\" | mailkey …, or give "+flag+" CMD", "standard input held no %s", what)
	}
	return **line, nil
}

// prompt asks for a secret at the terminal f without echoing it.
func prompt(e *env, f *os.File, what string) (string, error) {
	fmt.Fprintf(e.stderr, "mailkey: %s: ", what)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil {
		return "", errorf("run the command again in a terminal", "cannot read %s from the terminal", what)
	}
	return string(b), nil
}

// runCommand runs command with the shell, stdin given, and returns what it
// printed on standard output. Its standard error goes to the user's, for
// what a decryption program tells people (gpg's "decryption failed"); its
// output never appears in an error.
func runCommand(e *env, command string, stdin []byte) ([]byte, error) {
	var cmd *exec.Cmd
	if runtime.GOOS == "windows" {
		cmd = exec.CommandContext(e.ctx, "cmd", "/C", command)
	} else {
		cmd = exec.CommandContext(e.ctx, "/bin/sh", "-c", command)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, e.stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("failed with exit status %d", ee.ExitCode())
		}
		return nil, errors.New("could not be started")
	}
	return out.Bytes(), nil
}
