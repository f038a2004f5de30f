package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"unicode"

	"github.com/alecthomas/kong"
)

// TestHelpConventions walks every command and flag and holds its help text
// to the conventions: present, a sentence that starts upper-case and ends
// with a period, and `mailkey CMD --help` that prints it and exits 0 (but for
// a passthrough command, whose words are all its arguments).
func TestHelpConventions(t *testing.T) {
	var cmds commands
	parser, err := kong.New(&cmds, kong.Name("mailkey"), kong.Exit(func(int) {}))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		if n.Type == kong.CommandNode {
			path := n.Path()
			if !sentence(n.Help) {
				t.Errorf("command %q: help %q is not a sentence", path, n.Help)
			}
			for _, f := range n.Flags {
				if !sentence(f.Help) {
					t.Errorf("command %q flag --%s: help %q is not a sentence", path, f.Name, f.Help)
				}
			}
			for _, p := range n.Positional {
				if !sentence(p.Help) {
					t.Errorf("command %q argument %s: help %q is not a sentence", path, p.Name, p.Help)
				}
			}
			if n.Passthrough {
				// mailkey __complete takes every word after it as its own, --help too.
				for _, c := range n.Children {
					walk(c)
				}
				return
			}
			var out, errOut bytes.Buffer
			args := append(strings.Fields(path), "--help")
			if code := run(context.Background(), args, nil, &out, &errOut); code != 0 {
				t.Errorf("mailkey %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut.String())
			}
			if !strings.Contains(out.String(), "mailkey "+path) || !strings.Contains(out.String(), n.Help) {
				t.Errorf("mailkey %s --help does not show its usage and help:\n%s", path, out.String())
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(parser.Model.Node)
}

func sentence(s string) bool {
	if s == "" || !strings.HasSuffix(s, ".") {
		return false
	}
	r := []rune(s)
	return unicode.IsUpper(r[0])
}

// TestErrorOutput pins the output rules: one "mailkey: error:" line per
// problem, "mailkey: hint:" lines after, nothing on stdout, exit 2 for usage.
func TestErrorOutput(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"token"}, nil, &out, &errOut)
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if out.Len() != 0 {
		t.Errorf("stdout %q, want nothing", out.String())
	}
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	if !strings.HasPrefix(lines[0], "mailkey: error: ") {
		t.Errorf("first stderr line %q", lines[0])
	}
	if !strings.Contains(errOut.String(), "mailkey: hint: ") {
		t.Errorf("no hint in %q", errOut.String())
	}
}
