package store

import (
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// beforeRename, when set by a test, runs after a new file has been written
// and synced but before it takes the place of the old one. An error aborts
// the write as a crash would, minus the leftover temp file.
var beforeRename func() error

// writeTemp writes data to a new private temp file in dir and syncs it. The
// temp name starts with a dot, so it is never taken for a record. On error
// nothing is left behind.
func writeTemp(dir, base string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, "."+base+".tmp-*") // O_EXCL, 0600
	if err != nil {
		return "", err
	}
	name := f.Name()
	_, err = f.Write(data)
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

// syncDir makes a rename or unlink in dir durable.
func syncDir(dir string) error {
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

// writeFileAtomic replaces path with data: temp file, fsync, rename, fsync
// of the folder. Readers see the old or the new contents, never a mix.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := writeTemp(dir, filepath.Base(path), data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// createFileAtomic is writeFileAtomic that fails with fs.ErrExist instead of
// replacing an existing path (a hard link does not overwrite), so two
// processes creating the same key cannot both win.
func createFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := writeTemp(dir, filepath.Base(path), data)
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
	return syncDir(dir)
}

// randomSuffix names a temp file where os.CreateTemp cannot be used.
func randomSuffix() string { return rand.Text()[:12] }
