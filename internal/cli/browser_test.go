package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/internal/testwait"
)

// TestOpenBrowserUsesBROWSER pins the Unix convention: a colon-separated
// list of commands, the first that starts wins, %s is replaced by the URL
// and the URL is appended when there is none.
func TestOpenBrowserUsesBROWSER(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "args")
	script := filepath.Join(dir, "browser")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" > "+out+".tmp && mv "+out+".tmp "+out+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	const url = "http://127.0.0.1:1234/auth?state=x&scope=a+b"
	for _, tc := range []struct {
		browser string
		want    string
	}{
		{script, url},
		{script + " --new-window", "--new-window\n" + url},
		{script + " --open=%s", "--open=" + url},
		{"/nonexistent/browser:" + script, url},
	} {
		os.Remove(out)
		t.Setenv("BROWSER", tc.browser)
		if err := openBrowser(url); err != nil {
			t.Fatalf("BROWSER=%q: %v", tc.browser, err)
		}
		var got []byte
		// The browser runs in the background (the script writes its file
		// whole, by rename): wait for it until the test's deadline.
		testwait.WaitFor(t, "the browser's arguments", func() bool {
			b, err := os.ReadFile(out)
			got = b
			return err == nil
		})
		if strings.TrimSpace(string(got)) != tc.want {
			t.Errorf("BROWSER=%q: browser got %q, want %q", tc.browser, got, tc.want)
		}
	}
	t.Setenv("BROWSER", "/nonexistent/a:/nonexistent/b")
	if err := openBrowser(url); err == nil {
		t.Error("no browser could start, yet no error")
	}
}
