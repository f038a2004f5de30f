// Package fuzzscript tests test/fuzz.sh, the fuzz step of make test: it must fail when, and only
// when, a target finds a failing input, and then name the input and the command that re-runs it.
package fuzzscript

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const target = `package a

import "testing"

func FuzzSeedOnly(f *testing.F) {
	f.Add("seed")
	f.Fuzz(func(t *testing.T, s string) {
		if BUG && s != "seed" {
			t.Fatalf("planted bug")
		}
	})
}
`

// module writes a module holding a copy of fuzz.sh and one fuzz target, which fails on every
// input but its seed when bug is true.
func module(t *testing.T, bug bool) string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	script, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "fuzz.sh"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src := strings.Replace(target, "BUG", map[bool]string{true: "true", false: "false"}[bug], 1)
	for name, body := range map[string]string{
		"go.mod":       "module example.test/fz\n\ngo 1.26\n",
		"test/fuzz.sh": string(script),
		"a/a_test.go":  src,
		"a/a.go":       "package a\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func run(t *testing.T, dir, fuzztime string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(dir, "test", "fuzz.sh"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "FUZZTIME="+fuzztime)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestFuzzScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds instrumented packages")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}

	t.Run("clean target passes", func(t *testing.T) {
		out, code := run(t, module(t, false), "500x")
		if code != 0 || !strings.Contains(out, "fuzz example.test/fz/a FuzzSeedOnly (500x)") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})

	t.Run("planted bug fails with the reproducer", func(t *testing.T) {
		dir := module(t, true)
		out, code := run(t, dir, "500x")
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, out)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "a", "testdata", "fuzz", "FuzzSeedOnly", "*"))
		if len(files) != 1 {
			t.Fatalf("want one failing input, have %v:\n%s", files, out)
		}
		name := filepath.Base(files[0])
		for _, want := range []string{
			"planted bug",
			"failing input: a/testdata/fuzz/FuzzSeedOnly/" + name,
			"re-run it:     go test -run '^FuzzSeedOnly/" + name + "$' example.test/fz/a",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}

		// The input is now in the corpus: a second run, with a duration this time, fails on it
		// at once and names it again.
		out, code = run(t, dir, "30s")
		if code != 1 || !strings.Contains(out, "failing input: a/testdata/fuzz/FuzzSeedOnly/"+name) {
			t.Fatalf("second run: exit %d:\n%s", code, out)
		}

		// The command it prints re-runs the input with plain go test.
		cmd := exec.Command("go", "test", "-run", "^FuzzSeedOnly/"+name+"$", "example.test/fz/a")
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "planted bug") {
			t.Fatalf("re-run did not reproduce (%v):\n%s", err, b)
		}
	})
}
