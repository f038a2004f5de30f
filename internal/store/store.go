// Package store keeps OAuth 2.0 (RFC 6749) token records for mailkey
// accounts.
//
// The Store interface is implemented by an encrypted file backend, FileStore
// (the default: one file per account under the state folder, in the age v1
// format of https://age-encryption.org/v1, encrypted to one X25519 key that
// the OS keyring, an scrypt passphrase or a 0600 key file protects).
// Folders are 0700 and files 0600; like ssh, the store refuses secrets that
// group or others can read. Writes are atomic (temp file, fsync, rename) and
// keep the last good copy; locks are flock(2) advisory locks.
//
// Records hold secrets: never print a Record's tokens (Record.String and
// Record.Redacted leave them out), and no error of this package quotes one.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by Get when an account has no stored record.
var ErrNotFound = errors.New("no stored tokens")

// Record is what mailkey keeps for one account.
type Record struct {
	Account string `json:"account"`

	AccessToken string    `json:"access_token,omitempty"`
	TokenType   string    `json:"token_type,omitempty"`
	Expiry      time.Time `json:"expiry,omitzero"`
	// Issued is when the access token was received: Expiry minus Issued
	// is the lifetime the provider gave it, which sets how early it is
	// refreshed. Records written before this field have it zero.
	Issued time.Time `json:"issued,omitzero"`

	RefreshToken string `json:"refresh_token,omitempty"`
	// RefreshExpiry is when the provider said the refresh token dies
	// (Google's refresh_token_expires_in for apps in "Testing" status).
	RefreshExpiry time.Time `json:"refresh_expiry,omitzero"`

	Scopes   []string `json:"scopes,omitempty"`
	TokenURL string   `json:"token_url,omitempty"`
	Tenant   string   `json:"tenant,omitempty"`
	// Identity is the signed-in address taken from a verified ID token.
	Identity string `json:"identity,omitempty"`

	// NeedsLogin is set when the provider said the grant is dead
	// (invalid_grant and the like); Reason carries its description.
	NeedsLogin bool   `json:"needs_login,omitempty"`
	Reason     string `json:"reason,omitempty"`

	Created     time.Time `json:"created,omitzero"`
	Updated     time.Time `json:"updated,omitzero"`
	LastRefresh time.Time `json:"last_refresh,omitzero"`

	// Recovered is when the file store adopted this record from an
	// interrupted write: a complete temporary record, newer than the one in
	// place, that its writer never renamed into place (it was killed, or the
	// machine stopped). The store sets it; the next Put clears it.
	Recovered time.Time `json:"recovered,omitzero"`
	// SupersededBy is set only in the file store's backup copy of a record:
	// a digest of the refresh token of the record that replaced it. When it
	// is the digest of the backup's own refresh token, restoring the backup
	// spends no refresh token that a rotation has replaced.
	SupersededBy string `json:"superseded_by,omitempty"`
}

// Store persists records. Implementations are safe for concurrent use by
// several goroutines and several processes.
type Store interface {
	// Get returns the account's record, or an error wrapping ErrNotFound.
	// A record that exists but cannot be read is a *CorruptError.
	Get(ctx context.Context, account string) (*Record, error)
	// Put writes rec atomically; the previous record stays readable until
	// the new one is complete.
	Put(ctx context.Context, rec *Record) error
	// Delete forgets the account's record. Deleting a missing record is not an error.
	Delete(ctx context.Context, account string) error
	// List returns the accounts that have records, sorted.
	List(ctx context.Context) ([]string, error)
	// Lock takes the account's cross-process lock (blocking until ctx is
	// done) and returns the function that releases it.
	Lock(ctx context.Context, account string) (unlock func(), err error)
	// Protection says in words what protects the records at rest,
	// e.g. "OS keyring", "passphrase (MAILKEY_PASSPHRASE)", "key file /path".
	Protection() string
}
