package store

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"runtime"
)

// errTooLarge is the cause for a key or record file far larger than any
// this store writes.
var errTooLarge = errors.New("file is too large")

// checkPerm refuses a folder or file that group or others can access.
// Windows has no such mode bits (access is by ACL), so nothing is checked
// there.
func checkPerm(path string, fi fs.FileInfo) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return &PermissionError{Path: path, Mode: fi.Mode()}
	}
	return nil
}

// ensureDir creates dir (0700) if missing and refuses it when it is not a
// private folder.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &fs.PathError{Op: "open", Path: dir, Err: fs.ErrInvalid}
	}
	return checkPerm(dir, fi)
}

// readPrivate reads a secret file of at most limit bytes, refusing it when
// group or others can access it. A missing file yields an fs.ErrNotExist
// error.
func readPrivate(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkPerm(path, fi); err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fs.ErrInvalid}
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &fs.PathError{Op: "read", Path: path, Err: errTooLarge}
	}
	return b, nil
}
