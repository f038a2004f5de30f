// Package secperm refuses, as ssh does, secret files and folders that group
// or others can access, and creates private folders. An Error carries the
// chmod that fixes it. Windows has no such mode bits (access is by ACL), so
// nothing is refused there. It follows no RFC.
package secperm

import (
	"fmt"
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
