package apppass

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cheap keeps the tests fast; the format and code paths are the same.
var cheap = Params{Time: 1, Memory: 64, Threads: 1, KeyLen: 32}

func newFile(t *testing.T) *File {
	t.Helper()
	f := Open(filepath.Join(t.TempDir(), "state"))
	f.SetParams(cheap)
	return f
}

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		p, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		groups := strings.Split(p, "-")
		if len(groups) != 4 {
			t.Fatalf("password %q is not four groups", p)
		}
		for _, g := range groups {
			if len(g) != 5 || strings.Trim(g, alphabet) != "" {
				t.Fatalf("group %q of %q", g, p)
			}
		}
		if seen[p] {
			t.Fatalf("password repeated")
		}
		seen[p] = true
	}
	if len(alphabet) != 32 {
		t.Fatalf("alphabet has %d symbols, the entropy claim needs 32", len(alphabet))
	}
}

func TestAddListRemove(t *testing.T) {
	ctx := context.Background()
	f := newFile(t)
	pw1, a1, err := f.Add(ctx, "work", "")
	if err != nil {
		t.Fatal(err)
	}
	_, a2, err := f.Add(ctx, "work", "")
	if err != nil {
		t.Fatal(err)
	}
	_, a3, err := f.Add(ctx, "home", "scanner")
	if err != nil {
		t.Fatal(err)
	}
	if a1.Label != "app" || a2.Label != "app-2" || a3.Label != "scanner" {
		t.Errorf("labels %q %q %q", a1.Label, a2.Label, a3.Label)
	}
	if _, _, err := f.Add(ctx, "home", "scanner"); !errors.Is(err, ErrLabelTaken) {
		t.Errorf("duplicate label: %v", err)
	}
	for _, bad := range []string{" x", "a\nb", strings.Repeat("x", 65)} {
		if _, _, err := f.Add(ctx, "home", bad); !errors.Is(err, ErrBadLabel) {
			t.Errorf("label %q: %v", bad, err)
		}
	}
	fi, err := os.Stat(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v", fi.Mode())
	}
	b, _ := os.ReadFile(f.Path())
	if strings.Contains(string(b), pw1) || strings.Contains(string(b), normalize(pw1)) {
		t.Fatal("the password is stored in clear")
	}
	all, err := f.List("")
	if err != nil || len(all) != 3 || all[0].Account != "home" {
		t.Fatalf("list: %v %+v", err, all)
	}
	work, _ := f.List("work")
	if len(work) != 2 {
		t.Fatalf("list work: %+v", work)
	}
	if _, err := f.Remove(ctx, "work", "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove unknown: %v", err)
	}
	if _, err := f.Remove(ctx, "home", a1.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove another account's id: %v", err)
	}
	if r, err := f.Remove(ctx, "work", strings.ToUpper(a2.ID)); err != nil || r.Label != "app-2" {
		t.Errorf("remove by id: %v %+v", err, r)
	}
	if _, err := f.Remove(ctx, "work", "app"); err != nil {
		t.Errorf("remove by label: %v", err)
	}
	if work, _ := f.List("work"); len(work) != 0 {
		t.Errorf("after removal: %+v", work)
	}
}

func TestRefusesOpenFile(t *testing.T) {
	f := newFile(t)
	if _, _, err := f.Add(context.Background(), "work", ""); err != nil {
		t.Fatal(err)
	}
	os.Chmod(f.Path(), 0o644)
	var pe *PermissionError
	if _, err := f.List(""); !errors.As(err, &pe) {
		t.Fatalf("group-readable file: %v", err)
	}
}

func TestCorruptFile(t *testing.T) {
	f := newFile(t)
	os.MkdirAll(f.dir, 0o700)
	os.WriteFile(f.Path(), []byte("{nope"), 0o600)
	var ce *CorruptError
	if _, err := f.List(""); !errors.As(err, &ce) {
		t.Fatalf("corrupt file: %v", err)
	}
	if _, _, err := f.Add(context.Background(), "work", ""); !errors.As(err, &ce) {
		t.Fatalf("add over a corrupt file must not replace it: %v", err)
	}
}

// A file far larger than any this package writes is refused, not parsed.
func TestOversizeFile(t *testing.T) {
	f := newFile(t)
	os.MkdirAll(f.dir, 0o700)
	if err := os.WriteFile(f.Path(), make([]byte, maxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	var ce *CorruptError
	if _, err := f.List(""); !errors.As(err, &ce) || ce.Reason != "file too large" {
		t.Fatalf("oversize file: %v, want *CorruptError (file too large)", err)
	}
}

func accountsOf(login string) []string {
	switch login {
	case "work", "me@example.test":
		return []string{"work"}
	case "home":
		return []string{"home"}
	case "shared@example.test":
		return []string{"home", "work"}
	}
	return nil
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	f := newFile(t)
	pw, _, err := f.Add(ctx, "work", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	pw2, _, err := f.Add(ctx, "work", "scanner")
	if err != nil {
		t.Fatal(err)
	}
	homePW, _, err := f.Add(ctx, "home", "")
	if err != nil {
		t.Fatal(err)
	}
	v := f.NewVerifier(accountsOf)
	cases := []struct {
		login, pw, want string
	}{
		{"work", pw, "work"},
		{"me@example.test", pw2, "work"},
		{"work", strings.ToUpper(strings.ReplaceAll(pw, "-", " ")), "work"}, // typed back by a person
		{"shared@example.test", homePW, "home"},
		{"shared@example.test", pw, "work"},
		{"work", homePW, ""}, // another account's password
		{"home", pw, ""},
		{"nobody", pw, ""},
		{"work", "", ""},
		{"work", pw + "x", ""},
	}
	for _, c := range cases {
		got, err := v.Verify(ctx, c.login, c.pw)
		if c.want == "" {
			if !errors.Is(err, ErrNoMatch) {
				t.Errorf("%s: got %q, %v; want ErrNoMatch", c.login, got, err)
			}
			if err != nil && strings.Contains(err.Error(), c.pw) && c.pw != "" {
				t.Errorf("error quotes the password")
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: got %q, %v; want %q", c.login, got, err, c.want)
		}
	}
}

// A remembered success costs no argon2id run; a removal made by another
// process (another File on the same folder) is seen at the next login.
func TestVerifyCacheAndRemoval(t *testing.T) {
	ctx := context.Background()
	f := newFile(t)
	pw, info, err := f.Add(ctx, "work", "")
	if err != nil {
		t.Fatal(err)
	}
	v := f.NewVerifier(accountsOf)
	if _, err := v.Verify(ctx, "work", pw); err != nil {
		t.Fatal(err)
	}
	runs := v.hashes.Load()
	for range 10 {
		if _, err := v.Verify(ctx, "work", pw); err != nil {
			t.Fatal(err)
		}
	}
	if got := v.hashes.Load(); got != runs {
		t.Errorf("%d argon2id runs for remembered logins", got-runs)
	}
	// Flush writes the last use and keeps the remembered success.
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	l, _ := f.List("work")
	if len(l) != 1 || l[0].LastUsed.IsZero() {
		t.Fatalf("last use not written: %+v", l)
	}
	if _, err := v.Verify(ctx, "work", pw); err != nil || v.hashes.Load() != runs {
		t.Errorf("after flush: %v, %d more argon2id runs", err, v.hashes.Load()-runs)
	}
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	other := Open(f.dir)
	if _, err := other.Remove(ctx, "work", info.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, "work", pw); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("removed password still accepted: %v", err)
	}
}

// A second verifier's Flush must not undo a removal another process made
// in between.
func TestFlushKeepsRemoval(t *testing.T) {
	ctx := context.Background()
	f := newFile(t)
	pw, info, _ := f.Add(ctx, "work", "a")
	pwB, _, _ := f.Add(ctx, "work", "b")
	v := f.NewVerifier(accountsOf)
	if _, err := v.Verify(ctx, "work", pw); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(f.dir).Remove(ctx, "work", info.ID); err != nil {
		t.Fatal(err)
	}
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if l, _ := f.List("work"); len(l) != 1 || l[0].Label != "b" {
		t.Fatalf("after flush: %+v", l)
	}
	if _, err := v.Verify(ctx, "work", pw); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("removed password accepted after flush: %v", err)
	}
	if _, err := v.Verify(ctx, "work", pwB); err != nil {
		t.Fatal(err)
	}
}

// Tampered parameters cannot make a login allocate a gigabyte.
func TestTamperedParams(t *testing.T) {
	e := &Entry{Params: Params{Time: 1, Memory: 1 << 30, Threads: 1, KeyLen: 32}, Salt: []byte("salt"), Hash: make([]byte, 32)}
	if e.matches("x") {
		t.Fatal("matched")
	}
}

// Check names the password that matched, on its first login and on a remembered one.
func TestCheckLabel(t *testing.T) {
	ctx := context.Background()
	f := newFile(t)
	if _, _, err := f.Add(ctx, "work", "scanner"); err != nil {
		t.Fatal(err)
	}
	pw, _, err := f.Add(ctx, "work", "erp")
	if err != nil {
		t.Fatal(err)
	}
	v := f.NewVerifier(accountsOf)
	for _, when := range []string{"first", "remembered"} {
		m, err := v.CheckFrom(ctx, "127.0.0.1", "work", pw)
		if err != nil || m != (Match{Account: "work", Label: "erp"}) {
			t.Errorf("%s login: %+v, %v", when, m, err)
		}
	}
}
