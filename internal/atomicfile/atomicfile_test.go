package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// names lists dir, so a test can see that no temp file was left behind.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteFile(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := read(t, path); got != "two" {
		t.Errorf("contents %q, want %q", got, "two")
	}
	if got := names(t, dir); len(got) != 1 || got[0] != "f" {
		t.Errorf("folder holds %q, want only f", got)
	}
}

func TestWriteFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no POSIX mode bits")
	}
	dir := t.TempDir()
	for _, perm := range []fs.FileMode{0o600, 0o644, 0o400} {
		path := filepath.Join(dir, perm.String())
		if err := WriteFile(path, []byte("x"), perm); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != perm {
			t.Errorf("mode %v, want %v", fi.Mode().Perm(), perm)
		}
	}
}

// A failing BeforeRename is a write that never happened: the old contents
// stay and the temp file goes.
func TestBeforeRenameAborts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	var seen []string
	err := WriteFileWith(path, []byte("new"), 0o600, Options{BeforeRename: func() error {
		seen = names(t, dir)
		return boom
	}})
	if !errors.Is(err, boom) {
		t.Fatalf("WriteFileWith: %v, want boom", err)
	}
	if len(seen) != 2 {
		t.Errorf("before the rename the folder held %q, want f and its temp file", seen)
	}
	if got := read(t, path); got != "old" {
		t.Errorf("contents %q after an aborted write, want %q", got, "old")
	}
	if got := names(t, dir); len(got) != 1 {
		t.Errorf("folder holds %q after an aborted write, want only f", got)
	}
}

func TestBeforeRenameRuns(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := WriteFileWith(path, []byte("new"), 0o600, Options{BeforeRename: func() error {
		return os.Link(path, path+".bak")
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, path); got != "new" {
		t.Errorf("contents %q, want new", got)
	}
	if got := read(t, path+".bak"); got != "old" {
		t.Errorf("second name holds %q, want old", got)
	}
}

func TestCreateFileDoesNotReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	if err := CreateFile(path, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := CreateFile(path, []byte("second"), 0o600)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second CreateFile: %v, want fs.ErrExist", err)
	}
	if got := read(t, path); got != "first" {
		t.Errorf("contents %q, want first", got)
	}
	if got := names(t, dir); len(got) != 1 {
		t.Errorf("folder holds %q, want only key", got)
	}
}

// The data written is often a secret: no error may quote it.
func TestErrorsDoNotQuoteData(t *testing.T) {
	const secret = "refresh-token-SECRET-1234"
	missing := filepath.Join(t.TempDir(), "no", "such", "folder", "f")
	for name, err := range map[string]error{
		"WriteFile":  WriteFile(missing, []byte(secret), 0o600),
		"CreateFile": CreateFile(missing, []byte(secret), 0o600),
	} {
		if err == nil {
			t.Fatalf("%s into a missing folder succeeded", name)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s error quotes the data: %v", name, err)
		}
	}
}

func TestSyncDirMissing(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SyncDir does nothing on Windows")
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "gone")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SyncDir of a missing folder: %v, want fs.ErrNotExist", err)
	}
}

// The temp file an interrupted write leaves is found by IsTemp for its own
// base name only, never for a longer or shorter name that shares a prefix.
func TestIsTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.age")
	var temp string
	err := WriteFileWith(path, []byte("x"), 0o600, Options{BeforeRename: func() error {
		for _, n := range names(t, dir) {
			if n != "a.age" {
				temp = n
			}
		}
		return errors.New("stop before the rename")
	}})
	if err == nil || temp == "" {
		t.Fatalf("no temp file seen (%v)", err)
	}
	if !IsTemp(temp, "a.age") {
		t.Errorf("IsTemp(%q, a.age) = false", temp)
	}
	if base, ok := TempBase(temp); !ok || base != "a.age" {
		t.Errorf("TempBase(%q) = %q, %v", temp, base, ok)
	}
	for _, c := range []struct {
		name, base string
		want       bool
	}{
		{".a.age.tmp-123456789", "a.age", true},
		{".a.age.bak.tmp-ABCDEFGH2345", "a.age.bak", true},
		{".a.age.bak.tmp-ABCDEFGH2345", "a.age", false},
		{".a.age.tmp-1.age.tmp-99", "a.age", false},
		{".a.age.tmp-1.age.tmp-99", "a.age.tmp-1.age", true},
		{".a.age.tmp-", "a.age", false},
		{"a.age.tmp-1", "a.age", false},
		{".a.age.tmp-1/2", "a.age", false},
		{".a.age.tmp-" + strings.Repeat("1", 33), "a.age", false},
	} {
		if got := IsTemp(c.name, c.base); got != c.want {
			t.Errorf("IsTemp(%q, %q) = %v, want %v", c.name, c.base, got, c.want)
		}
	}
	for _, n := range []string{"a.age", ".tmp-1", "x.tmp-1", "..tmp-1"} {
		if _, ok := TempBase(n); ok {
			t.Errorf("TempBase(%q) says it is a temp file", n)
		}
	}
}

// TestStageClaim: a staged write's temp file cannot be claimed while its
// writer holds it, and can be once the writer is gone (Keep stands in for
// a killed process); Commit puts the contents in place.
func TestStageClaim(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	st, err := Stage(path, []byte("new"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Claim(st.tmp)
	if err != nil || c != nil {
		t.Fatalf("Claim of a live writer's temp file = %v, %v; want nil, nil", c, err)
	}
	if err := st.Commit(nil); err != nil {
		t.Fatal(err)
	}
	if got := read(t, path); got != "new" {
		t.Errorf("contents %q, want %q", got, "new")
	}
	if _, err := Claim(st.tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Claim after Commit: %v, want fs.ErrNotExist", err)
	}

	left, err := Stage(path, []byte("left"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	left.Keep()
	c, err = Claim(left.tmp)
	if err != nil || c == nil {
		t.Fatalf("Claim of a leftover = %v, %v", c, err)
	}
	if got := read(t, c.Path()); got != "left" {
		t.Errorf("leftover holds %q", got)
	}
	if again, err := Claim(left.tmp); err != nil || again != nil {
		t.Errorf("second Claim of a claimed file = %v, %v; want nil, nil", again, err)
	}
	if err := c.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := names(t, dir); len(got) != 1 || got[0] != "f" {
		t.Errorf("folder holds %q, want only f", got)
	}
}
