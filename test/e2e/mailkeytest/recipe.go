package mailkeytest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/mailkey/mailkey/test/e2e"
)

// Recipe reads the code blocks marked recipe=name in the Markdown page (a path from the top of
// the source tree, docs/clients/mutt.md), replaces the placeholders, and writes each block
// that names a file (file=~/.muttrc, ~ being the user's home) to that file, mode 0600, the
// blocks of one file appended in the page's order. It returns the blocks as written.
//
// subs are pairs of old and new text: the recipe's example values (addresses, hosts, ports,
// account names, paths under /home/alice) and the stack's. Each old must occur in the recipe,
// so that a page that changes its example fails here rather than testing something else.
func (e *Env) Recipe(page, name string, subs ...string) []e2e.Block {
	e.T.Helper()
	if len(subs)%2 != 0 {
		e.T.Fatalf("Recipe %s: placeholders come in pairs", name)
	}
	blocks, err := e2e.Recipe(filepath.Join(SourceRoot(e.T), page), name)
	if err != nil {
		e.T.Fatal(err)
	}
	for i := 0; i < len(subs); i += 2 {
		found := false
		for j := range blocks {
			if strings.Contains(blocks[j].Text, subs[i]) {
				found = true
				blocks[j].Text = strings.ReplaceAll(blocks[j].Text, subs[i], subs[i+1])
			}
		}
		if !found {
			e.T.Fatalf("%s, recipe %s: the example value %q is gone; update the test to what the page shows now", page, name, subs[i])
		}
	}
	written := map[string]bool{}
	for _, b := range blocks {
		file := b.Attr("file")
		if file == "" {
			continue
		}
		path := e.HomePath(file)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			e.T.Fatal(err)
		}
		flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		if written[path] {
			flags = os.O_WRONLY | os.O_APPEND
		}
		written[path] = true
		f, err := os.OpenFile(path, flags, 0o600)
		if err == nil {
			_, err = f.WriteString(b.Text)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			e.T.Fatal(err)
		}
	}
	return blocks
}

// Shell runs a shell block of a recipe (Lang sh) with bash -e in the user's home, as the user
// would paste it, and returns its combined output; a failing command fails the test.
func (e *Env) Shell(ctx context.Context, b e2e.Block) string {
	e.T.Helper()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-c", b.Text)
	cmd.Env, cmd.Dir = e.Vars, e.Home
	cmd.WaitDelay = waitDelay
	out, err := cmd.CombinedOutput()
	e.Leaks.Output("the shell block at line "+strconv.Itoa(b.Line), string(out))
	if err != nil {
		e.T.Fatalf("the shell block at line %d (%s): %v\n%s\n%s", b.Line, b.Section, err, b.Text, e.Leaks.Redact(string(out)))
	}
	return string(out)
}

// HomePath returns path with a leading ~ replaced by the user's home.
func (e *Env) HomePath(path string) string {
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		return filepath.Join(e.Home, rest)
	}
	return path
}

var sourceRoot struct {
	once sync.Once
	dir  string
	err  error
}

// SourceRoot returns the top of the source tree (the folder of go.mod).
func SourceRoot(t interface {
	Helper()
	Fatalf(string, ...any)
}) string {
	t.Helper()
	sourceRoot.once.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		sourceRoot.dir, sourceRoot.err = filepath.Dir(strings.TrimSpace(string(out))), err
	})
	if sourceRoot.err != nil {
		t.Fatalf("cannot find the source tree (go env GOMOD: %v)", sourceRoot.err)
	}
	return sourceRoot.dir
}

// OpenMailbox starts mutt or neomutt (prog) on a terminal (script gives it one) with the
// configuration rc and args, logging at -d 2 to debugLog in the user's home, lets it open its
// mailbox and quit, and returns the debug log. mutt's log holds the server's lines, neomutt's
// only its own steps; neither holds the token or the password.
func (e *Env) OpenMailbox(ctx context.Context, prog, rc, debugLog string, args ...string) string {
	e.T.Helper()
	script := NeedProgram(e.T, "script", "bsdutils")
	debugLog = filepath.Join(e.Home, debugLog)
	os.Remove(debugLog)
	cmdline := fmt.Sprintf("%s -n -d 2 -F %s %s -e 'push <quit>'", prog, rc, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, script, "-qec", cmdline, "/dev/null")
	cmd.Env, cmd.Dir = e.Vars, e.Home
	cmd.WaitDelay = waitDelay
	out, err := cmd.CombinedOutput()
	e.Leaks.Output(filepath.Base(prog), string(out))
	if err != nil {
		e.T.Fatalf("%s: %v\n%q", prog, err, e.Leaks.Redact(string(out)))
	}
	dbg, err := os.ReadFile(debugLog)
	if err != nil {
		e.T.Fatalf("%s wrote no debug log: %v\n%q", prog, err, e.Leaks.Redact(string(out)))
	}
	e.Leaks.Output(filepath.Base(prog)+" debug log", string(dbg))
	return string(dbg)
}
