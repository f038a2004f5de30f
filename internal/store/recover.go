package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mailkey/mailkey/internal/atomicfile"
)

// A write that is killed (or whose machine stops) between writing its temp
// file and renaming it leaves the temp file behind, and when that happens
// after a provider rotated the refresh token, the temp file holds the only
// copy of the new one. The store recovers such leftovers on the next Get,
// Put, List or Recover of the account: under the write lock, where no live
// writer can be halfway through a temp file, the newest temp record that is
// complete (it decrypts, so age has authenticated every byte), decodes,
// names the account and is newer than the record in place takes its place;
// every other leftover is removed.

// isLeftover reports whether name is a temp file of account's record or
// backup.
func isLeftover(name, account string) bool {
	return atomicfile.IsTemp(name, account+recordExt) || atomicfile.IsTemp(name, account+recordExt+backupExt)
}

// leftoverAccounts returns the accounts that entries (of the tokens folder)
// hold leftovers for.
func leftoverAccounts(entries []os.DirEntry) []string {
	var out []string
	for _, e := range entries {
		base, ok := atomicfile.TempBase(e.Name())
		if !ok {
			continue
		}
		account, ok := strings.CutSuffix(base, recordExt+backupExt)
		if !ok {
			account, ok = strings.CutSuffix(base, recordExt)
		}
		if ok && ValidateAccount(account) == nil && !slices.Contains(out, account) {
			out = append(out, account)
		}
	}
	return out
}

// leftovers returns the paths of account's temp files: those of its record,
// and those of its backup.
func (s *FileStore) leftovers(account string) (records, backups []string, err error) {
	entries, err := os.ReadDir(s.tokens)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		n := e.Name()
		switch {
		case atomicfile.IsTemp(n, account+recordExt):
			records = append(records, filepath.Join(s.tokens, n))
		case atomicfile.IsTemp(n, account+recordExt+backupExt):
			backups = append(backups, filepath.Join(s.tokens, n))
		}
	}
	return records, backups, nil
}

// recoverIfLeft recovers account's leftovers when there are any; without
// any it takes no lock.
func (s *FileStore) recoverIfLeft(ctx context.Context, account string) error {
	records, backups, err := s.leftovers(account)
	if err != nil {
		return fmt.Errorf("account %q: look for interrupted writes: %w", account, err)
	}
	if len(records)+len(backups) == 0 {
		return nil
	}
	return s.recoverAll(ctx, []string{account})
}

// recoverAll takes the write lock and recovers the leftovers of accounts.
func (s *FileStore) recoverAll(ctx context.Context, accounts []string) error {
	if waitingForWrites != nil {
		waitingForWrites()
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return fmt.Errorf("recover an interrupted write: %w", err)
	}
	defer unlock()
	for _, a := range accounts {
		if err := s.recoverLocked(a); err != nil {
			return err
		}
	}
	return nil
}

// recoverLocked, with the write lock held, finishes what interrupted writes
// of account left: the newest complete temp record, when it is newer than
// the current record (by its Updated and LastRefresh times) or the current
// one is missing or unreadable, is written in place as a normal write would
// (temp file, fsync, rename, folder fsync; an unreadable record is moved
// aside, the replaced one becomes the backup) with Recovered set, rather than
// renamed, so that the record says it was recovered and the data reaches
// the disk even if the killed writer's fsync never ran. Then every leftover
// of the account is removed: incomplete, older, damaged or another
// account's temp records, and backup temp files (a backup is complete
// before it is renamed, so its temp file is never needed).
//
// A current record the store refuses to read for a reason other than its
// contents (group-readable, say) is left alone with its leftovers until
// that is fixed; Get reports why.
func (s *FileStore) recoverLocked(account string) error {
	records, backups, err := s.leftovers(account)
	if err != nil || len(records)+len(backups) == 0 {
		return err
	}
	path := s.recordPath(account)
	cur, err := s.read(account, path)
	var ce *CorruptError
	switch {
	case err == nil, errors.Is(err, fs.ErrNotExist), errors.As(err, &ce):
	default:
		return nil
	}
	var best *Record
	var bestPath string
	for _, p := range records {
		r, err := s.read(account, p)
		if err != nil {
			continue // incomplete or not this account's: removed below
		}
		if best == nil || stamp(r).After(stamp(best)) {
			best, bestPath = r, p
		}
	}
	if best != nil && (cur == nil || stamp(best).After(stamp(cur))) {
		best.Recovered, best.SupersededBy = time.Now().UTC(), ""
		if err := s.installLocked(best, true); err != nil {
			return fmt.Errorf("account %q: recover the interrupted write %s: %w", account, bestPath, err)
		}
	}
	for _, p := range append(records, backups...) {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("account %q: remove the leftover of an interrupted write: %w", account, err)
		}
	}
	return atomicfile.SyncDir(s.tokens)
}

// stamp is when rec was last written: the later of Updated and LastRefresh.
func stamp(rec *Record) time.Time {
	if rec.LastRefresh.After(rec.Updated) {
		return rec.LastRefresh
	}
	return rec.Updated
}
