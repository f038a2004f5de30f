// Package secperm refuses, as ssh does, secret files and folders that group
// or others can access, reads secret files, and creates private folders. An
// Error carries the chmod that fixes it. Windows has no such mode bits
// (access is by ACL), so nothing is refused there. It follows no RFC.
package secperm

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
)

// Error reports a folder that group or others can enter, or a file that
// group or others can access.
type Error struct {
	Path string
	Mode fs.FileMode
}

func (e *Error) Error() string {
	want := "600"
	if e.Mode.IsDir() {
		want = "700"
	}
	return fmt.Sprintf("permissions %#o on %s are too open (group or others can access it): run chmod %s %s",
		e.Mode.Perm(), e.Path, want, shellQuote(e.Path))
}

// Check returns an *Error when fi, the stat of path, lets group or others
// in.
func Check(path string, fi fs.FileInfo) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return &Error{Path: path, Mode: fi.Mode()}
	}
	return nil
}

// CheckPrivate stats path (following symbolic links) and returns an
// *Error when group or others can access it.
func CheckPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return Check(path, fi)
}

// ErrTooLarge is the cause of a ReadFile error for a file over its limit.
var ErrTooLarge = errors.New("file is too large")

// ReadFile reads the secret file at path, of at most limit bytes, and
// returns its contents with the stat of the file it read. It refuses a file
// that group or others can access (an *Error), one that is not a regular
// file, and one over limit (an *fs.PathError wrapping ErrTooLarge). A
// missing file yields an error matching fs.ErrNotExist. Its errors never
// quote the contents.
func ReadFile(path string, limit int64) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if err := Check(path, fi); err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, &fs.PathError{Op: "read", Path: path, Err: fs.ErrInvalid}
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(b)) > limit {
		return nil, nil, &fs.PathError{Op: "read", Path: path, Err: ErrTooLarge}
	}
	return b, fi, nil
}

// EnsureDir creates dir (0700, with missing parents) if missing and
// refuses it when it is not a folder or not a private one.
func EnsureDir(dir string) error {
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
	return Check(dir, fi)
}

// shellQuote returns p as one word for a POSIX shell.
func shellQuote(p string) string {
	if p != "" && strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-@+=:,") == "" {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}
