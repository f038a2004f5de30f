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
// hold leftovers of killed writes for.
func (s *FileStore) leftoverAccounts(entries []os.DirEntry) []string {
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
		if ok && ValidateAccount(account) == nil && !slices.Contains(out, account) &&
			anyLeftover([]string{filepath.Join(s.tokens, e.Name())}) {
			out = append(out, account)
		}
	}
	return out
}

// leftovers returns the paths of account's temp files: those of its record,
// and those of its backup, whether their writers are alive or not.
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

// claim takes the temp files at paths whose writers are gone; the others
// (a live writer's, or removed meanwhile) are left out.
func claim(paths []string) []*atomicfile.Claimed {
	var out []*atomicfile.Claimed
	for _, p := range paths {
		if c, err := atomicfile.Claim(p); err == nil && c != nil {
			out = append(out, c)
		}
	}
	return out
}

// anyLeftover reports whether a killed writer left any of the temp files
// at paths, without keeping them claimed.
func anyLeftover(paths []string) bool {
	claimed := claim(paths)
	for _, c := range claimed {
		c.Release()
	}
	return len(claimed) > 0
}

// recoverIfLeft recovers account's leftovers when there are any; without
// any it takes no lock, and a write under way (its temp file locked) does
// not make a reader wait.
func (s *FileStore) recoverIfLeft(ctx context.Context, account string) error {
	records, backups, err := s.leftovers(account)
	if err != nil {
		return fmt.Errorf("account %q: look for interrupted writes: %w", account, err)
	}
	if !anyLeftover(append(records, backups...)) {
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
// of account left (temp files no live writer holds, see claim): the newest complete temp record, when it is newer than
// the current record (by its Updated and LastRefresh times) or the current
// one is missing or unreadable, is written in place as a normal write would
// (temp file, fsync, rename, folder fsync; an unreadable record is moved
// aside, the replaced one becomes the backup) with Recovered set, rather than
// renamed, so that the record says it was recovered and the data reaches
// the disk even if the killed writer's fsync never ran. Then every leftover
// of the account is removed: incomplete, older, damaged or another
// account's temp records, and backup temp files (a backup is complete
// before it is renamed, so its temp file is never needed). The temp files
// of writes under way are left to their writers.
//
// A current record the store refuses to read for a reason other than its
// contents (group-readable, say) is left alone with its leftovers until
// that is fixed; Get reports why.
func (s *FileStore) recoverLocked(account string) error {
	records, backups, err := s.leftovers(account)
	if err != nil || len(records)+len(backups) == 0 {
		return err
	}
	left, leftBackups := claim(records), claim(backups)
	defer func() {
		for _, c := range append(left, leftBackups...) {
			c.Release()
		}
	}()
	if len(left)+len(leftBackups) == 0 {
		return nil // only writes under way
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
	for _, c := range left {
		r, err := s.read(account, c.Path())
		if err != nil {
			continue // incomplete or not this account's: removed below
		}
		if best == nil || stamp(r).After(stamp(best)) {
			best, bestPath = r, c.Path()
		}
	}
	if best != nil && (cur == nil || stamp(best).After(stamp(cur))) {
		best.Recovered, best.SupersededBy = time.Now().UTC(), ""
		if err := s.installLocked(best, true); err != nil {
			return fmt.Errorf("account %q: recover the interrupted write %s: %w", account, bestPath, err)
		}
	}
	for _, c := range append(left, leftBackups...) {
		if err := c.Remove(); err != nil {
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
