package cli

import (
	"strings"
	"testing"

	"github.com/mailkey/mailkey/internal/store"
)

// The hint for a locked store fits what protects it.
func TestLockedHint(t *testing.T) {
	for _, tt := range []struct {
		protection, want string
	}{
		{"passphrase (" + store.EnvPassphrase + ")", "set " + store.EnvPassphrase},
		{"OS keyring", "unlock the OS keyring"},
		{"key file /state/key.txt", "restore the key from a backup"},
	} {
		err := storeError(&store.LockedError{Dir: "/state", Protection: tt.protection, Reason: "missing"})
		e, ok := err.(*Error)
		if !ok {
			t.Fatalf("storeError gave %T, want *Error", err)
		}
		if !strings.HasPrefix(e.Hint, tt.want) {
			t.Errorf("%s: hint %q, want it to start with %q", tt.protection, e.Hint, tt.want)
		}
	}
}
