package e2e

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestCodeBlocks(t *testing.T) {
	md := "# Page\n\n## Gmail\n\n```muttrc file=~/.muttrc recipe=gmail\nset a = 1\n```\n\n" +
		"1. In a list:\n\n   ```\n   poll localhost\n       keep\n   ```\n\n```sh\nnot = an attribute\n```\n"
	path := filepath.Join(t.TempDir(), "page.md")
	if err := os.WriteFile(path, []byte(md), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := CodeBlocks(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Block{
		{Lang: "muttrc", Attrs: map[string]string{"file": "~/.muttrc", "recipe": "gmail"}, Text: "set a = 1\n", Section: "Gmail", Line: 5},
		{Attrs: map[string]string{}, Text: "poll localhost\n    keep\n", Section: "Gmail", Line: 11},
		{Lang: "sh", Attrs: map[string]string{}, Text: "not = an attribute\n", Section: "Gmail", Line: 16},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CodeBlocks:\ngot  %+v\nwant %+v", got, want)
	}
	if _, err := Recipe(path, "gmail"); err != nil {
		t.Errorf("Recipe gmail: %v", err)
	}
	if _, err := Recipe(path, "outlook"); err == nil {
		t.Error("Recipe outlook: no error for a recipe the page does not have")
	}
}

// TestClientPagesAreRun holds docs/clients/ to what its pages promise: every page marks at
// least one recipe, and every recipe it marks is read by an end-to-end test (a
// Recipe("docs/clients/PAGE.md", …) call in clitest or servetest, and the name as a string).
func TestClientPagesAreRun(t *testing.T) {
	pages, err := filepath.Glob("../../docs/clients/*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no pages under docs/clients (%v)", err)
	}
	var tests string
	for _, dir := range []string{"clitest", "servetest"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*_test.go"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			tests += string(b)
		}
	}
	for _, page := range pages {
		blocks, err := CodeBlocks(page)
		if err != nil {
			t.Fatal(err)
		}
		rel := "docs/clients/" + filepath.Base(page)
		names := map[string]bool{}
		for _, b := range blocks {
			if n := b.Attr("recipe"); n != "" {
				names[n] = true
			}
		}
		if len(names) == 0 {
			t.Errorf("%s marks no recipe (```LANG recipe=NAME file=PATH): no test runs it", rel)
		}
		for n := range names {
			if !strings.Contains(tests, `Recipe("`+rel+`", `) || !strings.Contains(tests, `"`+n+`"`) {
				t.Errorf("%s: no test reads recipe %s", rel, n)
			}
		}
	}
}
