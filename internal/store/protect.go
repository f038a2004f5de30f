package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/zalando/go-keyring"

	"github.com/mailkey/mailkey/internal/atomicfile"
	"github.com/mailkey/mailkey/internal/flock"
	"github.com/mailkey/mailkey/internal/secperm"
)

// Environment variables read by OpenFile.
const (
	EnvPassphrase = "MAILKEY_PASSPHRASE"
	EnvNoKeyring  = "MAILKEY_NO_KEYRING"
	EnvStateDir   = "MAILKEY_STATE_DIR"
)

const (
	// keyringService is the OS keyring service name of every store key.
	keyringService = "mailkey"
	// keyringProbeTimeout bounds the keyring call that decides whether a
	// new store can use the keyring: a keyring that does not answer quickly
	// is treated as absent.
	keyringProbeTimeout = 3 * time.Second
	// keyringUnlockTimeout bounds the keyring call of a store that was
	// created in the keyring: a desktop may be showing an unlock prompt.
	keyringUnlockTimeout = 60 * time.Second
	// defaultScryptWorkFactor is age's default (about a second).
	defaultScryptWorkFactor = 18
	// maxScryptWorkFactor is the largest work factor accepted when
	// unlocking, age's own default ceiling.
	maxScryptWorkFactor = 22
	// maxKeyFileSize bounds key files: an age identity is 74 bytes.
	maxKeyFileSize = 64 << 10

	protectionFile = "protection"
	keyFile        = "key.txt"
	wrappedKeyFile = "key.age"
)

// mode is how the store key is protected; its string is what the
// protection file holds.
type mode string

const (
	modeKeyring    mode = "keyring"
	modePassphrase mode = "passphrase"
	modeKeyFile    mode = "keyfile"
)

// errNoKey means the protection a store names has no key (yet): the keyring
// has no entry, or the key file is missing.
var errNoKey = errors.New("no key")

// sessionBusAvailable reports whether asking the OS keyring can answer
// without starting anything. On Linux and the BSDs go-keyring speaks to the
// Secret Service over the D-Bus session bus; with no bus address godbus
// would run dbus-launch and leave a daemon behind, so a box without a
// session bus has no keyring. Tests replace it.
var sessionBusAvailable = func() bool {
	switch runtime.GOOS {
	case "darwin", "windows", "ios":
		return true
	}
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" && a != "autolaunch:" {
		return true
	}
	_, err := os.Stat(fmt.Sprintf("/run/user/%d/bus", os.Getuid()))
	return err == nil
}

// keyringGet asks the OS keyring with a deadline. On timeout the call is
// abandoned (it finishes in the background; go-keyring takes no context).
func keyringGet(user string, timeout time.Duration) (string, error) {
	type answer struct {
		secret string
		err    error
	}
	ch := make(chan answer, 1)
	go func() {
		s, err := keyring.Get(keyringService, user)
		ch <- answer{s, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case a := <-ch:
		return a.secret, a.err
	case <-t.C:
		return "", fmt.Errorf("the OS keyring did not answer within %v", timeout)
	}
}

func keyringSet(user, secret string, timeout time.Duration) error {
	ch := make(chan error, 1)
	go func() { ch <- keyring.Set(keyringService, user, secret) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-ch:
		return err
	case <-t.C:
		return fmt.Errorf("the OS keyring did not answer within %v", timeout)
	}
}

// keyringUser is the keyring user name of the store in dir: stable for one
// folder, different for two.
func keyringUser(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return "store-" + hex.EncodeToString(sum[:12])
}

// opener holds what OpenFile was given to find or make the key.
type opener struct {
	dir        string
	keyring    bool
	passphrase string
	workFactor int
	timeout    time.Duration // 0: the defaults above
}

func (o *opener) keyringTimeout(def time.Duration) time.Duration {
	if o.timeout > 0 {
		return o.timeout
	}
	return def
}

func (o *opener) describe(m mode) string {
	switch m {
	case modeKeyring:
		return "OS keyring"
	case modePassphrase:
		return "passphrase (" + EnvPassphrase + ")"
	default:
		return "key file " + filepath.Join(o.dir, keyFile)
	}
}

func (o *opener) locked(m mode, reason string, err error) error {
	return &LockedError{Dir: o.dir, Protection: o.describe(m), Reason: reason, Err: err}
}

// readMode returns the protection recorded in the state folder, "" if none.
func (o *opener) readMode() (mode, error) {
	b, err := os.ReadFile(filepath.Join(o.dir, protectionFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	switch m := mode(strings.TrimSpace(string(b))); m {
	case modeKeyring, modePassphrase, modeKeyFile:
		return m, nil
	}
	return "", fmt.Errorf("%s: unknown protection (want %s, %s or %s)",
		filepath.Join(o.dir, protectionFile), modeKeyring, modePassphrase, modeKeyFile)
}

func (o *opener) writeMode(m mode) error {
	return atomicfile.WriteFile(filepath.Join(o.dir, protectionFile), []byte(string(m)+"\n"), 0o600)
}

// load gets the key of a store protected by m. It returns errNoKey when
// the key is simply not there, so that an empty store can start over.
func (o *opener) load(m mode) (*age.X25519Identity, error) {
	switch m {
	case modeKeyring:
		if !o.keyring {
			return nil, o.locked(m, "the OS keyring is switched off ("+EnvNoKeyring+" or the caller's choice); switch it back on", nil)
		}
		if !sessionBusAvailable() {
			return nil, o.locked(m, "no OS keyring is reachable (no D-Bus session bus)", nil)
		}
		s, err := keyringGet(keyringUser(o.dir), o.keyringTimeout(keyringUnlockTimeout))
		if errors.Is(err, keyring.ErrNotFound) {
			return nil, errNoKey
		}
		if err != nil {
			return nil, o.locked(m, "the OS keyring did not give the key", err)
		}
		id, err := parseIdentity([]byte(s))
		if err != nil {
			return nil, o.locked(m, "the OS keyring entry for this store is not an age identity", nil)
		}
		return id, nil

	case modePassphrase:
		path := filepath.Join(o.dir, wrappedKeyFile)
		b, _, err := secperm.ReadFile(path, maxKeyFileSize)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errNoKey
		}
		if err != nil {
			return nil, err
		}
		if o.passphrase == "" {
			return nil, o.locked(m, "set "+EnvPassphrase+" to the passphrase it was created with", nil)
		}
		sid, err := age.NewScryptIdentity(o.passphrase)
		if err != nil {
			return nil, err
		}
		sid.SetMaxWorkFactor(max(maxScryptWorkFactor, o.workFactor))
		r, err := age.Decrypt(bytes.NewReader(b), sid)
		if err != nil {
			if errors.Is(err, age.ErrIncorrectIdentity) {
				return nil, o.locked(m, "the passphrase in "+EnvPassphrase+" is wrong", nil)
			}
			return nil, o.locked(m, path+" is damaged: "+errMalformed.Error(), nil)
		}
		plain, err := io.ReadAll(io.LimitReader(r, maxKeyFileSize))
		if err != nil {
			return nil, o.locked(m, path+" is damaged: "+errMalformed.Error(), nil)
		}
		id, err := parseIdentity(plain)
		if err != nil {
			return nil, o.locked(m, path+" does not hold an age identity", nil)
		}
		return id, nil

	default:
		path := filepath.Join(o.dir, keyFile)
		b, _, err := secperm.ReadFile(path, maxKeyFileSize)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errNoKey
		}
		if err != nil {
			return nil, err
		}
		id, err := parseIdentity(b)
		if err != nil {
			return nil, o.locked(m, path+" does not hold an age identity", nil)
		}
		return id, nil
	}
}

// create makes a new key for a store protected by m. For the files it
// fails with fs.ErrExist if another process made one first.
func (o *opener) create(m mode) (*age.X25519Identity, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	text := fmt.Sprintf("# created: %s\n# public key: %s\n%s\n",
		time.Now().UTC().Format(time.RFC3339), id.Recipient(), id)
	switch m {
	case modeKeyring:
		if err := keyringSet(keyringUser(o.dir), id.String(), o.keyringTimeout(keyringUnlockTimeout)); err != nil {
			return nil, fmt.Errorf("store the key in the OS keyring: %w", err)
		}
	case modePassphrase:
		rcp, err := age.NewScryptRecipient(o.passphrase)
		if err != nil {
			return nil, err
		}
		rcp.SetWorkFactor(o.workFactor)
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, rcp)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(w, text); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		if err := atomicfile.CreateFile(filepath.Join(o.dir, wrappedKeyFile), buf.Bytes(), 0o600); err != nil {
			return nil, err
		}
	default:
		if err := atomicfile.CreateFile(filepath.Join(o.dir, keyFile), []byte(text), 0o600); err != nil {
			return nil, err
		}
	}
	return id, nil
}

// choose picks the protection of a new store: the OS keyring when it
// answers, else the passphrase when one is set, else a key file.
func (o *opener) choose() mode {
	if o.keyring && sessionBusAvailable() {
		_, err := keyringGet(keyringUser(o.dir), o.keyringTimeout(keyringProbeTimeout))
		if err == nil || errors.Is(err, keyring.ErrNotFound) {
			return modeKeyring
		}
	}
	if o.passphrase != "" {
		return modePassphrase
	}
	return modeKeyFile
}

// open finds the store's key, or makes one for a store that has none and
// holds no records. hasRecords reports whether any record file exists.
func (o *opener) open(lockDir string, hasRecords func() (bool, error)) (*age.X25519Identity, mode, error) {
	m, err := o.readMode()
	if err != nil {
		return nil, "", err
	}
	if m != "" {
		id, err := o.load(m)
		if err == nil {
			return id, m, nil
		}
		if !errors.Is(err, errNoKey) {
			return nil, "", err
		}
	}

	// No key yet. Decide under the folder's lock so that two processes
	// opening a new store agree on one key.
	unlock, err := flock.Lock(context.Background(), filepath.Join(lockDir, ".open.lock"))
	if err != nil {
		return nil, "", err
	}
	defer unlock()

	if m, err = o.readMode(); err != nil {
		return nil, "", err
	}
	if m == "" {
		// Key files without a protection file: a crash between making
		// the key and recording it. Use what is there.
		for _, c := range []struct {
			file string
			m    mode
		}{{wrappedKeyFile, modePassphrase}, {keyFile, modeKeyFile}} {
			if _, err := os.Stat(filepath.Join(o.dir, c.file)); err == nil {
				m = c.m
				break
			}
		}
	}
	if m != "" {
		id, err := o.load(m)
		if err == nil {
			return id, m, o.writeMode(m)
		}
		if !errors.Is(err, errNoKey) {
			return nil, "", err
		}
	}
	recs, err := hasRecords()
	if err != nil {
		return nil, "", err
	}
	if recs {
		if m == "" {
			m = modeKeyring
			if id, err := o.load(m); err == nil {
				return id, m, o.writeMode(m)
			}
			return nil, "", &LockedError{Dir: o.dir, Protection: "an unknown key",
				Reason: "records exist but " + protectionFile + " and the key are missing"}
		}
		return nil, "", o.locked(m, "the key is missing but records encrypted with it exist", nil)
	}

	m = o.choose()
	id, err := o.create(m)
	if err != nil {
		return nil, "", err
	}
	return id, m, o.writeMode(m)
}

// parseIdentity reads one X25519 identity in age-keygen format. Its
// errors never quote the input.
func parseIdentity(b []byte) (*age.X25519Identity, error) {
	var found *age.X25519Identity
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if found != nil {
			return nil, errors.New("more than one identity")
		}
		id, err := age.ParseX25519Identity(line)
		if err != nil {
			return nil, errors.New("not an age X25519 identity")
		}
		found = id
	}
	if found == nil {
		return nil, errors.New("no identity")
	}
	return found, nil
}

// envBool reads a yes/no environment variable; unset or unparsable is no.
func envBool(name string) bool {
	v, err := strconv.ParseBool(os.Getenv(name))
	return err == nil && v
}
