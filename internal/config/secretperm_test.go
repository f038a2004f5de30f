package config

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
)

// A file holding a client secret that group or others can read is refused
// with the chmod to run, without quoting the secret; 0600 loads.
func TestSecretFilePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no POSIX mode bits")
	}
	const secret = "client-secret-VALUE-9876"
	path := writeFile(t, t.TempDir(), "config.toml", validAccount+"\tclient_secret = \""+secret+"\"\n")
	if _, err := Load(path); err != nil {
		t.Fatalf("0600 file: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil {
		t.Fatal("0644 file holding a client secret loaded")
	}
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 {
		t.Fatalf("0644 file: %v, want one config error", err)
	}
	if errs[0].Field != "accounts.work.client_secret" || !strings.Contains(errs[0].Hint, "chmod 600 "+path) {
		t.Errorf("error %q (hint %q) does not name the field and the chmod to run", err, errs[0].Hint)
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(errs[0].Hint, secret) {
		t.Errorf("error quotes the secret: %v", err)
	}
}
