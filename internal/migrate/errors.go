package migrate

import (
	"errors"
	"fmt"
)

// ErrUnknownFormat: the file is none that Read understands.
var ErrUnknownFormat = errors.New("not a mutt_oauth2.py token file, an email-oauth2-proxy configuration or a mailkey export")

// ErrEncrypted: the file is encrypted by another program (gpg, as
// mutt_oauth2.py's ENCRYPTION_PIPE does by default) and no decryption was
// given.
var ErrEncrypted = errors.New("the file is encrypted (OpenPGP)")

// ErrWrongPassword: the password does not decrypt email-oauth2-proxy's
// cached tokens of an account.
var ErrWrongPassword = errors.New("the password does not decrypt the cached tokens")

// ErrWrongPassphrase: the passphrase or identity does not open the bundle.
var ErrWrongPassphrase = errors.New("the passphrase or identity does not open the bundle")

// CorruptError says that a file of a known format cannot be read. Reason
// never quotes the file's bytes.
type CorruptError struct {
	Format Format
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("the %s cannot be read: %s", e.Format, e.Reason)
}

// NoTokensError says that an account of the file holds no refresh token:
// the other tool never logged it in, or it forgot the grant.
type NoTokensError struct {
	Format  Format
	Account string
}

func (e *NoTokensError) Error() string {
	return fmt.Sprintf("account %s in the %s holds no refresh token", e.Account, e.Format)
}

// NotInFileError says that an account asked for is not in the file.
type NotInFileError struct {
	Format  Format
	Account string
	Known   []string
}

func (e *NotInFileError) Error() string {
	return fmt.Sprintf("the %s has no account %s", e.Format, e.Account)
}
