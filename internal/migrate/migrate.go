// Package migrate reads the OAuth 2.0 grants that other mail tools keep, so
// that mailkey import can take them over without a new login: the token file
// of mutt's mutt_oauth2.py, the configuration and token cache of
// email-oauth2-proxy, and the bundle mailkey export writes.
//
// A Grant carries tokens (RFC 6749 §5.1): this package never prints them
// and no error of it quotes one, or a password, or the bytes of a file.
package migrate

import (
	"bytes"
	"time"

	"filippo.io/age"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/store"
)

// maxFileSize bounds what Read accepts: token files and configurations are
// a few KiB, so anything this large is not one of them.
const maxFileSize = 4 << 20

// Format is a kind of file that Read understands.
type Format int

const (
	Unknown    Format = iota
	Mutt              // mutt_oauth2.py's token file (JSON), as decrypted
	EmailProxy        // email-oauth2-proxy's configuration (INI) with its cached tokens
	Bundle            // mailkey export's bundle (age)
	Encrypted         // a file that is encrypted by something else (OpenPGP): decrypt it first
)

func (f Format) String() string {
	switch f {
	case Mutt:
		return "mutt_oauth2.py token file"
	case EmailProxy:
		return "email-oauth2-proxy configuration"
	case Bundle:
		return "mailkey export"
	case Encrypted:
		return "encrypted file"
	}
	return "unknown format"
}

// Grant is one account taken from a file: the settings that configure it in
// mailkey and the tokens it holds.
type Grant struct {
	// Name is what the file calls the account: its address (mutt_oauth2.py,
	// email-oauth2-proxy) or its mailkey name (a bundle).
	Name string
	// Settings configure the account, as mailkey add writes them.
	Settings []config.KV

	AccessToken  string
	Expiry       time.Time // zero when the file does not say
	RefreshToken string
	Scopes       []string // granted scopes, when the file says

	// Record is set by bundles: the whole record another mailkey kept,
	// whose tokens the fields above repeat.
	Record *store.Record

	// Mapped says, in words and without secrets, where each setting came
	// from; Check says what the file could not tell and the user should
	// look at.
	Mapped []string
	Check  []Check
}

// Check is one thing the user should look at after an import. It is
// settled when any of Keys (settings) is given by other means.
type Check struct {
	Keys []string
	Text string
}

// check adds a Check settled by keys.
func (g *Grant) check(text string, keys ...string) {
	g.Check = append(g.Check, Check{Keys: keys, Text: text})
}

// Detect tells what kind of file data is, from its first bytes.
func Detect(data []byte) Format {
	t := bytes.TrimLeft(data, " \t\r\n\ufeff")
	switch {
	case bytes.HasPrefix(t, []byte(ageHeader)), bytes.HasPrefix(t, []byte(ageArmorHeader)):
		return Bundle
	case bytes.HasPrefix(t, []byte("-----BEGIN PGP MESSAGE-----")), isOpenPGPPacket(data):
		return Encrypted
	case bytes.HasPrefix(t, []byte("{")):
		return Mutt
	case bytes.HasPrefix(t, []byte("[")), bytes.HasPrefix(t, []byte("#")), bytes.HasPrefix(t, []byte(";")):
		return EmailProxy
	}
	return Unknown
}

// isOpenPGPPacket reports whether data starts like a binary OpenPGP message
// (RFC 4880 §4.2): a packet tag with bit 7 set for a public-key or
// symmetric-key encrypted session key, or a compressed or encrypted packet.
func isOpenPGPPacket(data []byte) bool {
	if len(data) == 0 || data[0]&0x80 == 0 {
		return false
	}
	var tag byte
	if data[0]&0x40 != 0 {
		tag = data[0] & 0x3f // new format
	} else {
		tag = (data[0] >> 2) & 0x0f // old format
	}
	switch tag {
	case 1, 3, 8, 9, 18, 20: // PKESK, SKESK, compressed, SED, SEIPD, AEAD
		return true
	}
	return false
}

// Options say how Read gets what a file needs opened.
type Options struct {
	// Names selects accounts by their name in the file; empty means all.
	Names []string
	// Decrypt, when set, turns the file into what it encrypts before it is
	// read: mutt_oauth2.py's DECRYPTION_PIPE (gpg --decrypt by default).
	Decrypt func(data []byte) ([]byte, error)
	// Cache is email-oauth2-proxy's --cache-store file, when its tokens are
	// kept apart from its configuration.
	Cache []byte
	// Password returns the password an email-oauth2-proxy account's tokens
	// are encrypted with: the one its mail client logs in to the proxy with.
	Password func(account string) (string, error)
	// Identities returns what opens a bundle: the passphrase's identity when
	// passphrase is true, else the identities of the user's key file.
	Identities func(passphrase bool) ([]age.Identity, error)
	// Location is the time zone of mutt_oauth2.py's naive times; nil means
	// time.Local.
	Location *time.Location
}

// Read reads the grants in data, a file of any Format, and says which
// format it was.
func Read(data []byte, o Options) (Format, []*Grant, error) {
	if len(data) > maxFileSize {
		return Unknown, nil, ErrUnknownFormat
	}
	if o.Decrypt != nil {
		plain, err := o.Decrypt(data)
		if err != nil {
			return Encrypted, nil, err
		}
		data = plain
	}
	f := Detect(data)
	var grants []*Grant
	var err error
	switch f {
	case Encrypted:
		return f, nil, ErrEncrypted
	case Mutt:
		loc := o.Location
		if loc == nil {
			loc = time.Local
		}
		var g *Grant
		if g, err = readMutt(data, loc); err == nil {
			grants = []*Grant{g}
			for _, n := range o.Names {
				if n != g.Name {
					return f, nil, &NotInFileError{Format: f, Account: n, Known: []string{g.Name}}
				}
			}
		}
	case EmailProxy:
		grants, err = readEmailProxy(data, o.Cache, o.Names, o.Password)
	case Bundle:
		var ids []age.Identity
		pass, perr := BundleNeedsPassphrase(data)
		if perr != nil {
			return f, nil, perr
		}
		if ids, err = o.Identities(pass); err == nil {
			grants, err = readBundle(data, ids, o.Names)
		}
	default:
		return f, nil, ErrUnknownFormat
	}
	if err != nil {
		return f, nil, err
	}
	return f, grants, nil
}
