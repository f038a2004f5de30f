package store

import (
	"errors"
	"io"
	"io/fs"
	"os"

	"github.com/mailkey/mailkey/internal/secperm"
)

// errTooLarge is the cause for a key or record file far larger than any
// this store writes.
var errTooLarge = errors.New("file is too large")

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
	if err := secperm.Check(path, fi); err != nil {
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
