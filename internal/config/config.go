package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/secperm"
)

// DefaultRefreshMargin is used when refresh_margin is not set.
const DefaultRefreshMargin = 5 * time.Minute

// maxRefreshMargin: access tokens usually live an hour, so a margin this
// long would refresh on every use.
const maxRefreshMargin = time.Hour

// fileLimit bounds the configuration file and the PEM files Load reads.
const fileLimit = 1 << 20

// Flows an account can use; FlowInteractive is the default.
const (
	FlowInteractive       = ""                   // a person logs in: browser, device code or paste
	FlowClientCredentials = "client_credentials" // app-only (RFC 6749 4.4), secret or certificate (RFC 7523)
	FlowServiceAccount    = "service_account"    // Google service account, JWT bearer grant (RFC 7523)
)

// Config is a loaded, validated configuration file.
type Config struct {
	// File is the path Load read.
	File string
	// RefreshMargin: a token with less time than this left is refreshed;
	// the token manager lowers it to half a short token's lifetime.
	RefreshMargin time.Duration
	Proxy         Proxy
	// Accounts in the order the file first mentions them.
	Accounts []*Account
}

// Proxy is the [proxy] table, with defaults filled in. A listener address
// of "" disables that listener.
type Proxy struct {
	IMAP, POP3, SMTP    string // plain listeners; clients may upgrade with STARTTLS
	IMAPS, POP3S, SMTPS string // implicit TLS listeners
	// CertFile and KeyFile hold the listeners' TLS certificate; empty
	// means one is generated into the state directory.
	CertFile, KeyFile string
	// AllowNonLoopback permits TLS listeners and the status page on
	// addresses other than loopback.
	AllowNonLoopback bool
	// Status is the status page and /metrics listener.
	Status string
	// LogFormat is "text" or "json".
	LogFormat string
	// LogLevel is the least level logged: "debug", "info", "warn" or
	// "error".
	LogLevel string
	// Agent: mailkey serve answers mailkey token on the state folder's
	// agent socket.
	Agent bool
}

// LogLevels are the values of log_level, from the most verbose.
var LogLevels = []string{"debug", "info", "warn", "error"}

// DefaultProxy returns the [proxy] settings used for keys the file leaves
// out.
func DefaultProxy() Proxy {
	return Proxy{
		IMAP:      "127.0.0.1:1143",
		POP3:      "127.0.0.1:1110",
		SMTP:      "127.0.0.1:1587",
		Status:    "127.0.0.1:8025",
		LogFormat: "text",
		LogLevel:  "info",
		Agent:     true,
	}
}

// Account is one [accounts.NAME] table as written, plus what Load can work
// out without the network (Servers, Protocols). Paths are absolute:
// relative ones in the file are taken relative to the file's directory,
// and ~/ means the home directory.
type Account struct {
	Name     string
	Provider string
	// Email is the identity that signs in; login compares the provider's
	// ID token with it.
	Email string
	// Mailbox is the mailbox the account opens when it is not Email's own
	// (a Microsoft 365 shared or delegated mailbox); "" otherwise.
	Mailbox  string
	ClientID string
	// ClientSecret is a secret: never log or print it.
	ClientSecret string
	// ClientSecretCmd is a shell command printing the client secret; see
	// Resolved.Secret. Treated as a secret too.
	ClientSecretCmd string
	// ClientSecretExpires is when the client secret stops working, as the
	// user recorded it (client_secret_expires); zero when not recorded.
	ClientSecretExpires time.Time
	Tenant              string
	// Cloud names the Microsoft cloud ("" for the preset's own), see
	// provider.Cloud.
	Cloud string
	// Endpoint overrides; Issuer also drives discovery for generic.
	Issuer, AuthURL, TokenURL, DeviceURL, RevokeURL, IntrospectURL string
	// Scopes replaces the preset's least-privilege scopes when set.
	Scopes []string
	// IMAP, POP3 and SMTP are the server URLs as written ("" when unset).
	IMAP, POP3, SMTP string
	// Servers holds the effective servers: the preset's, overridden by
	// the account's.
	Servers map[provider.Protocol]provider.Server
	// Protocols the account is used for: the protocols key, else the
	// protocols whose server the account sets, else every protocol with a
	// server.
	Protocols []provider.Protocol
	// protocols is the protocols key as written; nil when it is not.
	protocols          []string
	CAFile             string
	Flow               string
	CertificateFile    string
	PrivateKeyFile     string
	ServiceAccountFile string
	// SASL is the mechanism override as written: "", "xoauth2" or
	// "oauthbearer".
	SASL string

	// File and Line locate the account's first mention.
	File string
	Line int
}

// String names the account without any secret, so that printing an
// *Account cannot leak its client secret.
func (a *Account) String() string {
	return "account " + a.Name + " (" + a.Provider + ", " + a.Email + ")"
}

// User is the SASL user the account logs in to mail servers as: the
// mailbox when one is set, else the signed-in identity.
func (a *Account) User() string {
	if a.Mailbox != "" {
		return a.Mailbox
	}
	return a.Email
}

// Account returns the account called name, or an *UnknownAccountError.
func (c *Config) Account(name string) (*Account, error) {
	for _, a := range c.Accounts {
		if a.Name == name {
			return a, nil
		}
	}
	return nil, &UnknownAccountError{Name: name, File: c.File, Known: c.Names()}
}

// Names lists the account names in file order.
func (c *Config) Names() []string {
	names := make([]string, len(c.Accounts))
	for i, a := range c.Accounts {
		names[i] = a.Name
	}
	return names
}

// Load reads and validates the configuration file at path. It does no
// network I/O; it does check that the files the configuration names
// (ca_file, cert_file, …) can be read.
//
// On failure the error is Errors, holding every problem found, each an
// *Error naming file, line and field. A missing file gives a single *Error
// for which errors.Is(err, fs.ErrNotExist) holds.
func Load(path string) (*Config, error) {
	data, err := readLimited(path)
	if err != nil {
		e := &Error{File: path, Msg: describeFileErr(err), err: err}
		if errors.Is(err, fs.ErrNotExist) {
			e.Msg = "configuration file does not exist" // the CLI says how to make one
		}
		return nil, Errors{e}
	}
	cfg, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	if err := checkSecretPerms(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkSecretPerms refuses, as ssh does, a file that holds a client secret
// and that group or others can read.
func checkSecretPerms(cfg *Config) error {
	fi, err := os.Stat(cfg.File)
	if err != nil || secperm.Check(cfg.File, fi) == nil {
		return nil
	}
	var errs Errors
	for _, a := range cfg.Accounts {
		if a.ClientSecret != "" {
			errs = append(errs, &Error{File: cfg.File, Line: a.Line, Field: fieldName("accounts", a.Name, "client_secret"),
				Msg:  fmt.Sprintf("the file holds a client secret but its permissions %#o let group or others read it", fi.Mode().Perm()),
				Hint: "chmod 600 " + cfg.File + "   (or move the secret to client_secret_cmd)"})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// parse validates data as the contents of the file at path.
func parse(path string, data []byte) (*Config, error) {
	b := &builder{file: path, dir: filepath.Dir(path)}
	cfg := b.build(data)
	if len(b.errs) > 0 {
		b.errs.sort()
		return nil, b.errs
	}
	return cfg, nil
}

// readLimited reads a regular file of at most fileLimit bytes. Refusing
// other kinds of file keeps Load from blocking on a FIFO or reading a
// device forever.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errNotRegular
	}
	data, err := io.ReadAll(io.LimitReader(f, fileLimit+1))
	if err != nil {
		return nil, err
	}
	if len(data) > fileLimit {
		return nil, errTooLarge
	}
	return data, nil
}

var (
	errNotRegular = errors.New("not a regular file")
	errTooLarge   = fmt.Errorf("larger than %d bytes", fileLimit)
)

// describeFileErr words a file error without repeating the path.
func describeFileErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	return err.Error()
}
