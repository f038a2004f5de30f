package secperm

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func skipWindows(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no POSIX mode bits")
	}
}

func TestCheckPrivateFile(t *testing.T) {
	skipWindows(t)
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckPrivate(path); err != nil {
		t.Fatalf("0600 file: %v", err)
	}
	os.Chmod(path, 0o640)
	err := CheckPrivate(path)
	var pe *Error
	if !errors.As(err, &pe) || pe.Path != path {
		t.Fatalf("0640 file: %v, want *Error for %s", err, path)
	}
	if !strings.Contains(err.Error(), "run chmod 600 "+path) || !strings.Contains(err.Error(), "0640") {
		t.Errorf("message %q lacks the mode or the chmod to run", err)
	}
}

func TestCheckPrivateMissing(t *testing.T) {
	if err := CheckPrivate(filepath.Join(t.TempDir(), "gone")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestEnsureDir(t *testing.T) {
	skipWindows(t)
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b")
	if err := EnsureDir(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("created folder mode %v, want 0700", fi.Mode().Perm())
	}
	if err := EnsureDir(dir); err != nil {
		t.Errorf("existing private folder: %v", err)
	}

	open := filepath.Join(root, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o755) // whatever the umask
	err = EnsureDir(open)
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("0755 folder: %v, want *Error", err)
	}
	if !strings.Contains(err.Error(), "run chmod 700 "+open) {
		t.Errorf("message %q lacks chmod 700", err)
	}

	file := filepath.Join(root, "file")
	os.WriteFile(file, nil, 0o600)
	if err := EnsureDir(file); err == nil {
		t.Error("EnsureDir on a file succeeded")
	}
}

func TestErrorQuotesPath(t *testing.T) {
	e := &Error{Path: "/tmp/it's here", Mode: fs.ModeDir | 0o755}
	want := `permissions 0755 on /tmp/it's here are too open (group or others can access it): run chmod 700 '/tmp/it'\''s here'`
	if e.Error() != want {
		t.Errorf("got  %s\nwant %s", e.Error(), want)
	}
}

func TestReadFile(t *testing.T) {
	skipWindows(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	const secret = "SECRET-contents-5c1f"
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	b, fi, err := ReadFile(path, int64(len(secret)))
	if err != nil || string(b) != secret || fi == nil || fi.Size() != int64(len(secret)) {
		t.Fatalf("ReadFile of a 0600 file at its limit: %d bytes (match %v), %v, %v", len(b), string(b) == secret, fi, err)
	}

	// One byte over the limit.
	_, _, err = ReadFile(path, int64(len(secret))-1)
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: %v, want ErrTooLarge", err)
	}
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Error("error quotes the contents")
	}

	os.Chmod(path, 0o604)
	var pe *Error
	if _, _, err := ReadFile(path, 1<<10); !errors.As(err, &pe) || pe.Path != path {
		t.Errorf("0604 file: %v, want *Error for %s", err, path)
	}

	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadFile(sub, 1<<10); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("folder: %v, want fs.ErrInvalid", err)
	}
	if _, _, err := ReadFile(filepath.Join(dir, "gone"), 1<<10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}
