package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zalando/go-keyring"
)

// secretToken is distinctive enough that finding it anywhere is a leak.
const secretToken = "SECRETtok9f8e7d6c5b4a"

// TestErrorsNeverHoldSecrets provokes every error path with the token
// planted where the failing code could quote it.
func TestErrorsNeverHoldSecrets(t *testing.T) {
	ctx := context.Background()
	var errs []error
	collect := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", what)
			return
		}
		errs = append(errs, fmt.Errorf("%s: %w", what, err))
	}

	dir := stateDir(t)
	s := openTest(t, dir, nil)
	rec := testRecord("a", secretToken)
	rec.AccessToken, rec.RefreshToken = secretToken, secretToken
	mustPut(t, s, rec)
	mustPut(t, s, rec)
	path := s.recordPath("a")

	// Records that decrypt but do not decode, each quoting the token.
	for i, plain := range []string{
		`{"account":"a","expiry":"` + secretToken + `"}`,
		`{"account":"a","refresh_token":` + secretToken + `}`,
		`{"account":"a","scopes":"` + secretToken + `"}`,
		`{"account":"a","needs_login":"` + secretToken + `"}`,
		`{"account":"` + secretToken + `"}`,
		`{"account":"b","refresh_token":"` + secretToken + `"}`,
		`"` + secretToken + `"`,
		secretToken,
	} {
		writeRaw(t, path, encryptRaw(t, s, []byte(plain)))
		_, err := s.Get(ctx, "a")
		collect(fmt.Sprintf("Get of bad plaintext %d", i), err)
		collect(fmt.Sprintf("Put over bad plaintext %d", i), s.Put(ctx, rec))
	}
	// A record written in the clear, and an age header quoting the token.
	for i, raw := range []string{
		`{"account":"a","refresh_token":"` + secretToken + `"}`,
		"age-encryption.org/v1\n-> " + secretToken + "\n",
		"age-encryption.org/v1\n-> X25519 " + secretToken + "\n" + secretToken + "\n",
	} {
		writeRaw(t, path, []byte(raw))
		_, err := s.Get(ctx, "a")
		collect(fmt.Sprintf("Get of raw file %d", i), err)
	}
	// A damaged record whose backup holds a replaced refresh token: Get and
	// Recover say so.
	if err := s.PutWithOptions(ctx, testRecord("a", "rotated-"+secretToken), &PutOptions{Replace: true}); err != nil {
		t.Fatal(err)
	}
	damage(t, path)
	_, err := s.Get(ctx, "a")
	collect("Get with a spent backup", err)
	_, err = s.Recover(ctx, "a")
	collect("Recover with a spent backup", err)
	// Leftovers of interrupted writes that hold the token, but cannot be
	// adopted, go without an error; one that cannot be written in place
	// fails the read.
	for i, plain := range []string{
		`{"account":"a","refresh_token":` + secretToken + `}`,
		`{"account":"b","refresh_token":"` + secretToken + `"}`,
	} {
		plantTemp(t, s, "a", fmt.Sprint(i), encryptRaw(t, s, []byte(plain)))
	}
	plantTemp(t, s, "a", "raw", []byte(secretToken))
	_, err = s.Get(ctx, "a")
	collect("Get with leftovers beside a damaged record", err)
	if left := leftoverNames(t, s); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	if os.Geteuid() != 0 { // root writes into a read-only folder
		rec := newer("a", secretToken, time.Hour)
		rec.RefreshToken = secretToken
		p := plantTemp(t, s, "a", "9", encryptRecord(t, s, rec))
		os.Chmod(s.tokens, 0o500)
		_, err = s.Get(ctx, "a")
		os.Chmod(s.tokens, 0o700)
		collect("Get that cannot write the recovered record", err)
		os.Remove(p)
	}

	// Corrupt current and backup: Recover fails.
	writeRaw(t, path+backupExt, []byte(secretToken))
	_, err = s.Recover(ctx, "a")
	collect("Recover without a good backup", err)
	// Permissions.
	os.Chmod(path, 0o644)
	_, err = s.Get(ctx, "a")
	collect("Get of a 0644 record", err)
	// Names.
	_, err = s.Get(ctx, ".a")
	collect("Get of a bad name", err)

	// Key files holding token-like junk.
	kdir := stateDir(t)
	openTest(t, kdir, nil)
	writeRaw(t, filepath.Join(kdir, keyFile), []byte("AGE-SECRET-KEY-1"+secretToken+"\n"))
	_, err = OpenFile(kdir, testOpts())
	collect("OpenFile with a bad key file", err)

	// Passphrase: wrong, missing, and a damaged key.age.
	pdir := stateDir(t)
	popts := testOpts()
	popts.Passphrase = "right-" + secretToken
	openTest(t, pdir, popts)
	popts.Passphrase = "wrong-" + secretToken
	_, err = OpenFile(pdir, popts)
	collect("OpenFile with a wrong passphrase", err)
	_, err = OpenFile(pdir, testOpts())
	collect("OpenFile without a passphrase", err)
	writeRaw(t, filepath.Join(pdir, wrappedKeyFile), []byte("age-encryption.org/v1\n-> scrypt "+secretToken+"\n"))
	popts.Passphrase = "right-" + secretToken
	_, err = OpenFile(pdir, popts)
	collect("OpenFile with a damaged key.age", err)

	// Keyring entry that is not a key.
	useMockKeyring(t, nil)
	rdir := stateDir(t)
	rs := openTest(t, rdir, keyringOpts())
	keyring.Set(keyringService, keyringUser(rs.Dir()), secretToken)
	_, err = OpenFile(rdir, keyringOpts())
	collect("OpenFile with a bad keyring entry", err)

	for _, err := range errs {
		if strings.Contains(err.Error(), secretToken) {
			t.Errorf("error leaks the token: %v", err)
		}
		var ce *CorruptError
		if errors.As(err, &ce) && ce.Err != nil && strings.Contains(fmt.Sprintf("%+v", ce.Err), secretToken) {
			t.Errorf("CorruptError cause leaks the token: %v", ce.Err)
		}
	}
}

func TestRecordPrintingHidesTokens(t *testing.T) {
	rec := testRecord("a", secretToken)
	var log strings.Builder
	slog.New(slog.NewTextHandler(&log, nil)).Info("record", "rec", *rec)
	for _, out := range []string{
		fmt.Sprint(rec), fmt.Sprintf("%v %+v %#v %s", *rec, rec, rec, rec), log.String(),
	} {
		if strings.Contains(out, secretToken) {
			t.Errorf("printed record leaks the token: %s", out)
		}
	}
	if r := rec.Redacted(); r.AccessToken != "[redacted]" || r.RefreshToken != "[redacted]" || r.Account != "a" {
		t.Errorf("Redacted = %+v", r)
	}
	if rec.RefreshToken != "rt-"+secretToken {
		t.Error("Redacted changed the original")
	}
}
