// Package atomicfile replaces or creates files so that readers see the old
// contents or the new ones, never a mix, even after a crash: the data goes
// to a temp file in the same folder, is synced, renamed (rename(2) is
// atomic within one file system) or hard-linked into place, and the folder
// is synced so the new name survives a power loss. A temp file is locked
// by its writer from before its first byte until it is in place, so that
// the leftover of a killed writer, which may hold data found nowhere else,
// can be told from a write under way (Stage, Claim). It follows no RFC.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/mailkey/mailkey/internal/flock"
)

// Options adjusts WriteFileWith.
type Options struct {
	// BeforeRename, when set, runs after the new contents are written and
	// synced but before they take the place of the old file; a caller uses
	// it to keep a second name of the old file. An error aborts the write:
	// the temp file is removed and path is left as it was.
	BeforeRename func() error
}

// WriteFile replaces path with data in a file of mode perm (set
// explicitly, so the umask does not change it). On error path is untouched
// and no temp file is left behind.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return WriteFileWith(path, data, perm, Options{})
}

// WriteFileWith is WriteFile with options.
func WriteFileWith(path string, data []byte, perm fs.FileMode, opts Options) error {
	st, err := Stage(path, data, perm)
	if err != nil {
		return err
	}
	return st.Commit(opts.BeforeRename)
}

// CreateFile is WriteFile that fails with an error matching fs.ErrExist
// instead of replacing an existing path (a hard link does not overwrite),
// so two processes creating the same file cannot both win.
func CreateFile(path string, data []byte, perm fs.FileMode) error {
	st, err := Stage(path, data, perm)
	if err != nil {
		return err
	}
	defer st.Abort()
	if err := os.Link(st.tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
		}
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// A Staged write is new contents for a path, written and synced to a temp
// file in the same folder but not yet in its place. Until Commit or Abort
// its writer holds an exclusive lock on the temp file, which the kernel
// drops when the process dies, so another process can tell a write under
// way from the leftover of a killed one (Claim).
type Staged struct {
	f         *os.File // nil once released
	tmp, path string
	done      bool // committed or aborted
}

// maxStageTries bounds how often Stage makes a new temp file when another
// process claimed the last one before its lock was taken (see Claim).
const maxStageTries = 8

// Stage writes data to a new temp file for path with mode perm (set
// explicitly, so the umask does not change it), locked from before its
// first byte, and syncs it. The temp file's name starts with a dot and
// path's base name (see IsTemp). On error nothing is left behind.
func Stage(path string, data []byte, perm fs.FileMode) (*Staged, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	for range maxStageTries {
		f, err := os.CreateTemp(dir, "."+base+tempMarker+"*") // O_EXCL, 0600
		if err != nil {
			return nil, err
		}
		ok, err := flock.TryLockFile(f)
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		if !ok {
			// Claimed as a leftover between its creation and the lock:
			// the claimer removes it.
			f.Close()
			continue
		}
		st := &Staged{f: f, tmp: f.Name(), path: path}
		err = f.Chmod(perm.Perm())
		if err == nil {
			_, err = f.Write(data)
		}
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			st.Abort()
			return nil, err
		}
		return st, nil
	}
	return nil, fmt.Errorf("write %s: every new temp file was claimed by another process", path)
}

// Commit runs beforeRename, when set, and puts the staged contents in
// place of the path: renamed over it, and the folder synced. An error from
// beforeRename aborts the write: the temp file is removed and the path
// left as it was. On Windows the temp file is closed, and so unlocked,
// before the rename (an open file cannot be renamed there): a caller whose
// temp files another process may Claim orders Commit and Claim with a lock
// of its own.
func (st *Staged) Commit(beforeRename func() error) error {
	if beforeRename != nil {
		if err := beforeRename(); err != nil {
			st.Abort()
			return err
		}
	}
	if runtime.GOOS == "windows" {
		st.release()
	}
	if err := os.Rename(st.tmp, st.path); err != nil {
		st.Abort()
		return err
	}
	st.done = true
	st.release()
	return SyncDir(filepath.Dir(st.path))
}

// Abort removes the temp file, unless Commit put it in place. It is safe
// to call more than once.
func (st *Staged) Abort() {
	if st.done {
		return
	}
	st.done = true
	if runtime.GOOS == "windows" {
		st.release()
	}
	os.Remove(st.tmp)
	st.release()
}

// Keep gives up the temp file's lock and leaves the file where it is, as a
// killed writer would: the next Claim of it succeeds. A caller keeps a
// staged write it could not finish when the contents must not be lost.
func (st *Staged) Keep() {
	st.done = true
	st.release()
}

// release drops the lock and closes the temp file.
func (st *Staged) release() {
	if st.f == nil {
		return
	}
	flock.UnlockFile(st.f)
	st.f.Close()
	st.f = nil
}

// A Claimed temp file is the leftover of a write whose process is gone:
// its claimer holds its lock, so no writer can take it back.
type Claimed struct {
	f    *os.File
	path string
}

// Claim takes the lock of the temp file at path without waiting. It
// returns nil and no error while the file's writer is alive (Stage to
// Commit or Abort), and an error matching fs.ErrNotExist once the file is
// gone. The caller reads the file if it wants to, and then removes or
// releases it.
func Claim(path string) (*Claimed, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	ok, err := flock.TryLockFile(f)
	if err != nil || !ok {
		f.Close()
		return nil, err
	}
	return &Claimed{f: f, path: path}, nil
}

// Remove deletes the claimed file and releases it. On Unix the file is
// gone before its lock is, so a writer can never take it back; Windows
// cannot delete an open file, so there the lock goes first.
func (c *Claimed) Remove() error {
	if runtime.GOOS == "windows" {
		c.Release()
	}
	err := os.Remove(c.path)
	c.Release()
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	return err
}

// Path is where the claimed file is.
func (c *Claimed) Path() string { return c.path }

// Release gives the claimed file up without removing it. It is safe to
// call more than once.
func (c *Claimed) Release() {
	if c.f == nil {
		return
	}
	flock.UnlockFile(c.f)
	c.f.Close()
	c.f = nil
}

// SyncDir makes a rename, link or unlink in dir durable. Windows cannot
// sync a folder, so it does nothing there.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// tempMarker sits between the dot-prefixed base name and the random suffix
// of a temp file: .BASE.tmp-SUFFIX.
const tempMarker = ".tmp-"

// maxSuffix bounds the random part of a temp file's name: os.CreateTemp
// writes up to 10 digits, older releases of this program 12 letters.
const maxSuffix = 32

// IsTemp reports whether name (a file name, not a path) is a temp file that
// WriteFile, WriteFileWith or CreateFile made for a file called base in the
// same folder: ".BASE.tmp-SUFFIX", the suffix letters and digits. A writer
// killed before its rename leaves such a file behind; IsTemp lets the owner
// of base find it. The suffix never holds a dot, so the temp files of
// "a" are never taken for those of "a.tmp-1".
func IsTemp(name, base string) bool {
	rest, ok := strings.CutPrefix(name, "."+base+tempMarker)
	if !ok || rest == "" || len(rest) > maxSuffix {
		return false
	}
	for _, c := range []byte(rest) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// TempBase returns the base name a temp file was made for, and whether
// name is a temp file at all (see IsTemp).
func TempBase(name string) (string, bool) {
	i := strings.LastIndex(name, tempMarker)
	if i < 2 || name[0] != '.' {
		return "", false
	}
	base := name[1:i]
	return base, IsTemp(name, base)
}
