package e2e

import (
	"os"
	"path/filepath"
	"reflect"
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
