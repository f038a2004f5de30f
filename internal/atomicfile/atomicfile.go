// Package atomicfile replaces or creates files so that readers see the old
// contents or the new ones, never a mix, even after a crash: the data goes
// to a temp file in the same folder, is synced, renamed (rename(2) is
// atomic within one file system) or hard-linked into place, and the folder
// is synced so the new name survives a power loss. It follows no RFC.
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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
	dir := filepath.Dir(path)
	tmp, err := writeTemp(dir, filepath.Base(path), data, perm)
	if err != nil {
		return err
	}
	if opts.BeforeRename != nil {
		if err := opts.BeforeRename(); err != nil {
			os.Remove(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(dir)
}

// CreateFile is WriteFile that fails with an error matching fs.ErrExist
// instead of replacing an existing path (a hard link does not overwrite),
// so two processes creating the same file cannot both win.
func CreateFile(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := writeTemp(dir, filepath.Base(path), data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
		}
		return err
	}
	return SyncDir(dir)
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

// writeTemp writes data to a new temp file in dir with mode perm and syncs
// it. The name starts with a dot and base (see IsTemp), so a folder listing
// never takes it for the real file. On error nothing is left behind.
func writeTemp(dir, base string, data []byte, perm fs.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, "."+base+tempMarker+"*") // O_EXCL, 0600
	if err != nil {
		return "", err
	}
	name := f.Name()
	err = f.Chmod(perm.Perm())
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}
