package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mailkey/mailkey/internal/secperm"
)

// ErrLocked is matched (errors.Is) by every *LockedError: the store exists
// but its key cannot be had with what this process was given.
var ErrLocked = errors.New("token store is locked")

// ErrWrongKey is the *CorruptError cause for a file that is a well-formed
// age file but was not encrypted with this store's key.
var ErrWrongKey = errors.New("not encrypted with this store's key")

// errMalformed is the *CorruptError cause for a file that is not an age
// file at all, or whose ciphertext does not authenticate. The underlying
// age error is dropped on purpose: age quotes the offending header line,
// and a file written by mistake in plain text could hold a token.
var errMalformed = errors.New("not a valid age-encrypted file, or its contents were altered")

// PermissionError reports a state folder that group or others can enter, or
// a key or record file that group or others can access. Like ssh, the store
// refuses to use such secrets. Its message carries the chmod to run.
type PermissionError = secperm.Error

// LockedError says why the store's key could not be had. It matches
// ErrLocked.
type LockedError struct {
	// Dir is the state folder.
	Dir string
	// Protection is what the store was created with, in Protection's words.
	Protection string
	// Reason says what is missing, e.g. "set MAILKEY_PASSPHRASE to the
	// passphrase it was created with".
	Reason string
	// Err is the underlying cause, if any (a keyring error, for example).
	Err error
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("token store %s is protected by %s: %s", e.Dir, e.Protection, e.Reason)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

func (e *LockedError) Unwrap() error { return e.Err }

// CorruptError reports a record file that exists but cannot be decrypted or
// decoded. The store never overwrites such a file silently: see
// FileStore.Recover, FileStore.Quarantine and PutOptions.Replace.
//
// At most one of Backup and SpentBackup is set. Providers that rotate
// refresh tokens revoke the whole grant when a replaced one comes back, so
// a backup is offered for restoring only when it provably holds the refresh
// token the unreadable record last held.
type CorruptError struct {
	Account string
	Path    string
	// Backup is the backup file when it can be read and holds the same
	// refresh token as the unreadable record: restoring it (FileStore.Recover)
	// spends nothing. "" otherwise.
	Backup string
	// SpentBackup is the backup file when it can be read but a rotation may
	// have replaced its refresh token since (or the backup does not say
	// which token replaced it): it must not be restored. "" otherwise.
	SpentBackup string
	// Err says what is wrong; it never holds file contents.
	Err error
}

func (e *CorruptError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "stored tokens for account %q cannot be read from %s: %v", e.Account, e.Path, e.Err)
	switch {
	case e.Backup != "":
		fmt.Fprintf(&b, "; the backup at %s holds the same refresh token and can be restored", e.Backup)
	case e.SpentBackup != "":
		fmt.Fprintf(&b, "; the backup at %s holds an older refresh token that a rotation has replaced, or may have: using it would make the provider revoke the grant", e.SpentBackup)
	default:
		b.WriteString("; no earlier good copy exists")
	}
	return b.String()
}

func (e *CorruptError) Unwrap() error { return e.Err }

// InvalidNameError reports an account name that cannot be a file name.
type InvalidNameError struct {
	Name   string
	Reason string
}

func (e *InvalidNameError) Error() string {
	return fmt.Sprintf("invalid account name %q: %s", e.Name, e.Reason)
}
