package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/mailkey/mailkey/internal/atomicfile"
	"github.com/mailkey/mailkey/internal/flock"
	"github.com/mailkey/mailkey/internal/secperm"
)

// Layout of a state folder:
//
//	DIR/protection            which key protection the store uses (plain text)
//	DIR/key.txt               the age identity, when protected by a key file
//	DIR/key.age               the age identity encrypted with the passphrase
//	DIR/tokens/NAME.age       the record of account NAME
//	DIR/tokens/NAME.age.bak   the record NAME had before the last Put, with a
//	                          digest of the refresh token that replaced it
//	DIR/tokens/NAME.age.corrupt-TIMESTAMP   an unreadable record, moved aside
//	DIR/tokens/NAME.lock      the account's cross-process lock
//	DIR/tokens/.NAME.age.tmp-*       a record being written, or left by a write
//	DIR/tokens/.NAME.age.bak.tmp-*   that was interrupted (see recover.go)
//	DIR/tokens/.write.lock    taken while a record file is written or recovered
//	DIR/tokens/.open.lock     taken while a new store makes its key
//
// Records live in their own folder so that no account name can collide
// with the store's own files.
const (
	tokensDir     = "tokens"
	recordExt     = ".age"
	backupExt     = ".bak"
	lockExt       = ".lock"
	corruptMarker = ".corrupt-"
	corruptTime   = "20060102T150405Z"
	writeLockFile = ".write.lock"
)

// corruptSuffix is compiled on first use, not at the start of every mailkey command.
var corruptSuffix = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\.age\.corrupt-[0-9]{8}T[0-9]{6}Z(-[0-9]+)?$`)
})

// FileOptions tunes OpenFile. A nil *FileOptions means defaults.
type FileOptions struct {
	// NoKeyring keeps the store away from the OS keyring (tests must set
	// it). MAILKEY_NO_KEYRING=1 in the environment does the same.
	NoKeyring bool
	// Passphrase protects the key of a new store when no keyring answers,
	// and unlocks a passphrase-protected store. Empty means
	// $MAILKEY_PASSPHRASE.
	Passphrase string
	// ScryptWorkFactor is log2 of scrypt's N for a new passphrase-protected
	// key; 0 means 18, age's default (about a second). Tests use ~10.
	ScryptWorkFactor int
	// KeyringTimeout bounds each OS keyring call. 0 means 3s for the
	// probe that decides whether a new store uses the keyring, and 60s
	// to read the key of a store kept in the keyring (an unlock prompt
	// may be showing).
	KeyringTimeout time.Duration
}

// PutOptions tunes FileStore.PutWithOptions.
type PutOptions struct {
	// Replace lets Put write over a record that cannot be read. The
	// unreadable file is kept, moved aside to NAME.age.corrupt-TIMESTAMP.
	Replace bool
}

// FileStore is the default Store: one age-encrypted file per account in a
// private state folder, encrypted to one X25519 key that the OS keyring, a
// passphrase or a key file protects.
//
// Put and Delete do not take the account lock (callers doing a
// read-modify-write hold Lock around it), but each write is atomic on its
// own, and every change to the files of the tokens folder happens under the
// store's write lock (see lockWrites).
type FileStore struct {
	dir        string
	tokens     string
	protection string
	identity   *age.X25519Identity
	recipient  *age.X25519Recipient
	locks      localLocks
	writeMu    sync.Mutex // queues this process's goroutines for the write lock
}

var _ Store = (*FileStore)(nil)

// DefaultDir returns the state folder: $MAILKEY_STATE_DIR, else
// $XDG_STATE_HOME/mailkey, else ~/.local/state/mailkey. It does no I/O
// beyond looking up the home folder.
func DefaultDir() (string, error) {
	if d := os.Getenv(EnvStateDir); d != "" {
		return d, nil
	}
	// The XDG spec ignores relative paths.
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "mailkey"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the state folder: %w", err)
	}
	return filepath.Join(home, ".local", "state", "mailkey"), nil
}

// OpenFile opens the store in dir, creating the folder (0700) and the key
// on first use. The key is protected, in this order of preference, by the
// OS keyring, by a passphrase, or by the key file DIR/key.txt; which one a
// store uses is fixed when it is created (DIR/protection records it), and
// opening it without that protection yields a *LockedError rather than a
// second key. A folder that group or others can access yields a
// *PermissionError.
func OpenFile(dir string, opts *FileOptions) (*FileStore, error) {
	if opts == nil {
		opts = &FileOptions{}
	}
	if dir == "" {
		return nil, errors.New("open token store: no state folder given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := secperm.EnsureDir(abs); err != nil {
		return nil, err
	}
	// The keyring entry is named after the folder: resolve links so that
	// two spellings of one folder find one key.
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	s := &FileStore{dir: abs, tokens: filepath.Join(abs, tokensDir)}
	if err := secperm.EnsureDir(s.tokens); err != nil {
		return nil, err
	}
	o := &opener{
		dir:        abs,
		keyring:    !opts.NoKeyring && !envBool(EnvNoKeyring),
		passphrase: opts.Passphrase,
		workFactor: opts.ScryptWorkFactor,
		timeout:    opts.KeyringTimeout,
	}
	if o.passphrase == "" {
		o.passphrase = os.Getenv(EnvPassphrase)
	}
	if o.workFactor == 0 {
		o.workFactor = defaultScryptWorkFactor
	}
	if o.workFactor < 1 || o.workFactor > 30 {
		return nil, fmt.Errorf("open token store: scrypt work factor %d is outside 1..30", o.workFactor)
	}
	id, m, err := o.open(s.tokens, s.hasRecords)
	if err != nil {
		return nil, err
	}
	s.identity, s.recipient, s.protection = id, id.Recipient(), o.describe(m)
	return s, nil
}

// Dir returns the state folder, as an absolute path.
func (s *FileStore) Dir() string { return s.dir }

// Protection says what protects the key: "OS keyring", "passphrase
// (MAILKEY_PASSPHRASE)" or "key file /path/key.txt".
func (s *FileStore) Protection() string { return s.protection }

func (s *FileStore) recordPath(account string) string {
	return filepath.Join(s.tokens, account+recordExt)
}

// Get returns the account's record. A missing record wraps ErrNotFound; a
// record file that cannot be decrypted or decoded is a *CorruptError, which
// says whether its backup can be restored.
//
// Get first finishes what an interrupted write of the account left behind
// (see recoverLocked): a complete temporary record newer than the current
// one takes its place, and other leftovers are removed. That waits for the
// store's write lock only when such files exist.
func (s *FileStore) Get(ctx context.Context, account string) (*Record, error) {
	if err := ValidateAccount(account); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.recoverIfLeft(ctx, account); err != nil {
		return nil, err
	}
	rec, err := s.read(account, s.recordPath(account))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("account %q: %w", account, ErrNotFound)
	}
	var ce *CorruptError
	if errors.As(err, &ce) {
		s.describeBackup(ce)
	}
	return rec, err
}

// read decrypts and decodes one record file of account. A file that exists
// but cannot be read as a record is a *CorruptError (without Backup).
func (s *FileStore) read(account, path string) (*Record, error) {
	b, _, err := secperm.ReadFile(path, maxRecordSize)
	if err != nil {
		if errors.Is(err, secperm.ErrTooLarge) {
			return nil, &CorruptError{Account: account, Path: path, Err: secperm.ErrTooLarge}
		}
		return nil, err
	}
	corrupt := func(err error) error { return &CorruptError{Account: account, Path: path, Err: err} }
	r, err := age.Decrypt(bytes.NewReader(b), s.identity)
	if err != nil {
		if errors.Is(err, age.ErrIncorrectIdentity) {
			return nil, corrupt(ErrWrongKey)
		}
		return nil, corrupt(errMalformed)
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxRecordSize+1))
	if err != nil {
		return nil, corrupt(errMalformed)
	}
	rec, err := decodeRecord(plain)
	if err != nil {
		return nil, corrupt(err)
	}
	if rec.Account != account {
		return nil, corrupt(errors.New("the record inside belongs to another account"))
	}
	return rec, nil
}

// describeBackup fills in ce.Backup or ce.SpentBackup from the account's
// backup file, when it can be read.
func (s *FileStore) describeBackup(ce *CorruptError) {
	p := s.recordPath(ce.Account) + backupExt
	b, err := s.read(ce.Account, p)
	switch {
	case err != nil:
	case restorable(b):
		ce.Backup = p
	default:
		ce.SpentBackup = p
	}
}

// restorable reports whether backup b holds the refresh token of the record
// that replaced it, so that restoring it spends no refresh token a rotation
// has replaced. A backup that does not say (written before SupersededBy
// existed) is not restorable.
func restorable(b *Record) bool {
	return b.SupersededBy != "" && b.SupersededBy == refreshDigest(b.RefreshToken)
}

// refreshDigest names a refresh token without holding it: a truncated
// SHA-256, never empty (an absent token has a digest too).
func refreshDigest(rt string) string {
	sum := sha256.Sum256([]byte(rt))
	return "sha256:" + hex.EncodeToString(sum[:16])
}

// Put writes rec atomically. A record that cannot be read is not written
// over (a *CorruptError); see PutWithOptions.
func (s *FileStore) Put(ctx context.Context, rec *Record) error {
	return s.PutWithOptions(ctx, rec, nil)
}

// PutWithOptions writes rec atomically: the record is encrypted to a temp
// file in the same folder, synced, and renamed over the old one, which is
// kept first as NAME.age.bak (noting which refresh token replaced it).
// Readers see the old record or the new one. Over a record that cannot be
// read it fails with a *CorruptError unless opts.Replace is set, in which
// case the unreadable file is moved aside. Leftovers of an interrupted
// write are recovered first. rec.Recovered and rec.SupersededBy are not
// stored: a write clears them.
func (s *FileStore) PutWithOptions(ctx context.Context, rec *Record, opts *PutOptions) error {
	if rec == nil {
		return errors.New("put: nil record")
	}
	if err := ValidateAccount(rec.Account); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	next := *rec
	next.Recovered, next.SupersededBy = time.Time{}, ""
	// A rotated refresh token exists only in memory until it is on disk,
	// so the new record is encrypted and written to its locked temp file
	// before anything else, even before the write lock is taken: a
	// process killed from then on leaves a temp file that the next read
	// adopts (see recoverLocked).
	staged, err := s.stage(&next)
	if err != nil {
		return err
	}
	if afterStage != nil {
		afterStage()
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		staged.Keep() // as if killed here: the next read adopts it
		return fmt.Errorf("put %q: %w", rec.Account, err)
	}
	defer unlock()
	if err := s.recoverLocked(rec.Account); err != nil {
		staged.Keep()
		return err
	}
	return s.installStaged(&next, staged, opts != nil && opts.Replace)
}

// encrypt encodes and encrypts rec to the store's key.
func (s *FileStore) encrypt(rec *Record) ([]byte, error) {
	plain, err := encodeRecord(rec)
	if err != nil {
		return nil, fmt.Errorf("put %q: encode record: %w", rec.Account, err)
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, s.recipient)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// installLocked puts rec in place as its account's record; the write lock
// is held. The record it replaces, when good (else the backup there is),
// becomes the backup, re-encrypted with SupersededBy naming rec's refresh
// token, so that a later unreadable record can tell whether its backup is
// safe to restore. With replace, an unreadable record is moved aside.
func (s *FileStore) installLocked(rec *Record, replace bool) error {
	staged, err := s.stage(rec)
	if err != nil {
		return err
	}
	return s.installStaged(rec, staged, replace)
}

// stage encrypts rec and writes it to a locked temp file next to its
// account's record (atomicfile.Stage).
func (s *FileStore) stage(rec *Record) (*atomicfile.Staged, error) {
	ciphertext, err := s.encrypt(rec)
	if err != nil {
		return nil, err
	}
	staged, err := atomicfile.Stage(s.recordPath(rec.Account), ciphertext, 0o600)
	if err != nil {
		return nil, fmt.Errorf("put %q: %w", rec.Account, err)
	}
	return staged, nil
}

// installStaged puts rec, already staged (encrypted, written to its
// locked temp file and synced), in place as its account's record; the
// write lock is held. The staged temp file is written before the current
// record is read for the backup: should the process be killed from then
// on, the next read of the store adopts it.
func (s *FileStore) installStaged(rec *Record, staged *atomicfile.Staged, replace bool) error {
	account := rec.Account
	path := s.recordPath(account)
	return staged.Commit(func() error {
		if beforeRename != nil {
			if err := beforeRename(); err != nil {
				return err
			}
		}
		cur, err := s.read(account, path)
		var ce *CorruptError
		switch {
		case err == nil, errors.Is(err, fs.ErrNotExist):
		case errors.As(err, &ce) && replace:
		case errors.As(err, &ce):
			s.describeBackup(ce)
			return err
		default:
			return err
		}
		keep := cur
		if keep == nil {
			if b, err := s.read(account, path+backupExt); err == nil {
				keep = b
			}
		}
		// The backup is replaced (and an unreadable record moved aside)
		// only once the new record is safely on disk.
		if keep != nil {
			k := *keep
			k.Recovered, k.SupersededBy = time.Time{}, refreshDigest(rec.RefreshToken)
			backup, err := s.encrypt(&k)
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFile(path+backupExt, backup, 0o600); err != nil {
				return err
			}
		}
		if ce != nil {
			_, err := s.moveAside(path)
			return err
		}
		return nil
	})
}

// moveAside renames path to PATH.corrupt-TIMESTAMP without replacing an
// earlier one, and returns the new name.
func (s *FileStore) moveAside(path string) (string, error) {
	base := path + corruptMarker + time.Now().UTC().Format(corruptTime)
	for i := 1; ; i++ {
		dst := base
		if i > 1 {
			dst = fmt.Sprintf("%s-%d", base, i)
		}
		err := os.Link(path, dst)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if err := os.Remove(path); err != nil {
			return "", err
		}
		return dst, atomicfile.SyncDir(s.tokens)
	}
}

// Quarantine moves the account's current record file aside to
// NAME.age.corrupt-TIMESTAMP (never deleting it) and returns its new path.
// Afterwards the account has no record; its backup, if any, stays.
func (s *FileStore) Quarantine(ctx context.Context, account string) (string, error) {
	if err := ValidateAccount(account); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	path := s.recordPath(account)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("account %q: %w", account, ErrNotFound)
	}
	return s.moveAside(path)
}

// Recover makes the account's record readable again without asking the
// provider. It adopts what an interrupted write left, as Get does; then,
// when the record is unreadable or missing, it restores the backup if the
// backup holds the refresh token the lost record last held (restoring it
// spends nothing), moving an unreadable file aside to
// NAME.age.corrupt-TIMESTAMP. A backup older than the last rotation is
// never restored: the *CorruptError (with SpentBackup) or ErrNotFound
// stands. A record that reads fine is returned untouched.
func (s *FileStore) Recover(ctx context.Context, account string) (*Record, error) {
	if err := ValidateAccount(account); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := s.recoverLocked(account); err != nil {
		return nil, err
	}
	path := s.recordPath(account)
	rec, err := s.read(account, path)
	if err == nil {
		return rec, nil
	}
	ce := &CorruptError{Account: account, Path: path}
	missing := errors.Is(err, fs.ErrNotExist)
	if !missing && !errors.As(err, &ce) {
		return nil, err
	}
	s.describeBackup(ce)
	if ce.Backup == "" {
		if missing {
			return nil, fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		return nil, ce
	}
	good, err := s.read(account, ce.Backup)
	if err != nil {
		return nil, err
	}
	good.SupersededBy = ""
	if err := s.installLocked(good, true); err != nil {
		return nil, err
	}
	return good, nil
}

// Delete forgets the account: its record, its backup, any unreadable
// copies moved aside and any leftovers of interrupted writes. The lock file
// stays (see flock.Lock). Deleting a missing record is not an error.
func (s *FileStore) Delete(ctx context.Context, account string) error {
	if err := ValidateAccount(account); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	path := s.recordPath(account)
	victims := []string{path, path + backupExt}
	entries, err := os.ReadDir(s.tokens)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		if rest, ok := strings.CutPrefix(n, account); ok && corruptSuffix().MatchString(rest) || isLeftover(n, account) {
			victims = append(victims, filepath.Join(s.tokens, n))
		}
	}
	// The record first: once it is gone the account is forgotten even if
	// a later removal fails.
	for _, v := range victims {
		if err := os.Remove(v); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return atomicfile.SyncDir(s.tokens)
}

// List returns the accounts that have a record file (readable or not),
// sorted. It first recovers what interrupted writes left, for every
// account, so an account whose first write was interrupted is listed.
func (s *FileStore) List(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(s.tokens)
	if err != nil {
		return nil, err
	}
	if left := s.leftoverAccounts(entries); len(left) > 0 {
		if err := s.recoverAll(ctx, left); err != nil {
			return nil, err
		}
		if entries, err = os.ReadDir(s.tokens); err != nil {
			return nil, err
		}
	}
	var names []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), recordExt)
		if ok && e.Type().IsRegular() && ValidateAccount(name) == nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// hasRecords reports whether any record or backup file exists.
func (s *FileStore) hasRecords() (bool, error) {
	entries, err := os.ReadDir(s.tokens)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, ".") && (strings.HasSuffix(n, recordExt) || strings.HasSuffix(n, recordExt+backupExt)) {
			return true, nil
		}
	}
	return false, nil
}

// Lock takes the account's lock: first among this store's goroutines, then
// across processes with an advisory lock on NAME.lock. It waits until ctx is
// done and returns the function that releases the lock (safe to call more
// than once).
func (s *FileStore) Lock(ctx context.Context, account string) (func(), error) {
	if err := ValidateAccount(account); err != nil {
		return nil, err
	}
	release, err := s.locks.acquire(ctx, account)
	if err != nil {
		return nil, err
	}
	unlockFile, err := flock.Lock(ctx, filepath.Join(s.tokens, account+lockExt))
	if err != nil {
		release()
		return nil, err
	}
	return sync.OnceFunc(func() {
		unlockFile()
		release()
	}), nil
}

// lockWrites takes the store's write lock: writeMu among this process's
// goroutines, then an advisory lock on tokens/.write.lock across processes.
// Every change of a record or backup happens under it, and so does every
// recovery of leftovers; it is held only around local file I/O, never the
// network. A new record's temp file is written, under its own lock, before
// the write lock is taken (see PutWithOptions and recover.go).
func (s *FileStore) lockWrites(ctx context.Context) (func(), error) {
	s.writeMu.Lock()
	unlock, err := flock.Lock(ctx, filepath.Join(s.tokens, writeLockFile))
	if err != nil {
		s.writeMu.Unlock()
		return nil, fmt.Errorf("take the token store's write lock: %w", err)
	}
	return func() {
		unlock()
		s.writeMu.Unlock()
	}, nil
}
