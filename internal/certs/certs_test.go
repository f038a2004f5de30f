package certs

import (
	"errors"
	"os"
	"runtime"
	"testing"

	"github.com/mailkey/mailkey/internal/secperm"
)

// The generated key is written 0600 and the certificate 0644; a key that
// group or others can read is refused with the chmod to run, not used.
func TestGeneratedCertificatePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no POSIX mode bits")
	}
	state := t.TempDir()
	if _, generated, err := Load("", "", state); err != nil || !generated {
		t.Fatalf("first load: generated=%v err=%v", generated, err)
	}
	certFile, keyFile := Paths(state)
	for file, want := range map[string]os.FileMode{keyFile: 0o600, certFile: 0o644} {
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", file, fi.Mode().Perm(), want)
		}
	}
	if _, generated, err := Load("", "", state); err != nil || generated {
		t.Fatalf("second load: generated=%v err=%v, want the existing certificate", generated, err)
	}

	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := Load("", "", state)
	var pe *secperm.Error
	if !errors.As(err, &pe) || pe.Path != keyFile {
		t.Fatalf("group-readable key: %v, want *secperm.Error for %s", err, keyFile)
	}
}
