package cli

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// TestManListsEveryCommand holds mailkey man to the command definitions: every visible
// command has its section with its usage line, and every visible flag is described.
func TestManListsEveryCommand(t *testing.T) {
	page := manPage(t)
	parser, err := kong.New(new(commands), kong.Name("mailkey"), kong.Exit(func(int) {}))
	if err != nil {
		t.Fatal(err)
	}
	leaves := parser.Model.Leaves(true)
	if len(leaves) < 15 {
		t.Fatalf("only %d commands in the model", len(leaves))
	}
	for _, n := range leaves {
		if !strings.Contains(page, ".SS "+roffQuote("mailkey "+n.Summary())+"\n") {
			t.Errorf("no section for mailkey %s", n.Path())
		}
		for _, f := range n.Flags {
			if !f.Hidden && !strings.Contains(page, `\fB\-\-`+roff(f.Name)+`\fR`) {
				t.Errorf("mailkey %s: flag --%s is not described", n.Path(), f.Name)
			}
		}
	}
	for _, hidden := range []string{"__complete", "background-refresh"} {
		if strings.Contains(page, roff(hidden)) {
			t.Errorf("the page shows the hidden command %s", hidden)
		}
	}
}

// TestManRenders runs the page through groff with every warning on: a line that roff
// would read as a request, or a bad escape, fails it.
func TestManRenders(t *testing.T) {
	if _, err := exec.LookPath("groff"); err != nil {
		t.Skip("groff is not installed (package groff-base)")
	}
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-rLL=80n", "-P-bou")
	cmd.Stdin = strings.NewReader(manPage(t))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil || errOut.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, errOut.String())
	}
	text := out.String()
	for _, want := range []string{"mailkey token <account> [flags]", "--sasl", "MAILKEY_CONFIG", "EXIT STATUS"} {
		if !strings.Contains(text, want) {
			t.Errorf("the rendered page has no %q:\n%s", want, text)
		}
	}
}

func manPage(t *testing.T) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"man"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("mailkey man: exit %d: %s", code, errOut.String())
	}
	return out.String()
}
