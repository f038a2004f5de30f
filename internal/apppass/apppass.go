// Package apppass keeps the local app passwords that mail clients use to
// log in to the mailkey proxy, and checks them.
//
// Passwords are generated here (20 characters from a 32-symbol alphabet,
// 100 bits of entropy), shown once and stored only as argon2id hashes
// (RFC 9106, the "second recommended option": t=3, m=64 MiB, p=4) with
// their salt and parameters, in one JSON file in the state folder: 0600,
// written atomically (temp file, fsync, rename) under a file lock. An
// account may have several, each with a label, and each can be revoked.
// Nothing else depends on them: token encryption never uses what a mail
// client sends.
//
// A Verifier checks logins for a running proxy. It runs argon2id once per
// password, then remembers the success under an HMAC-SHA256 of (account,
// password) keyed with a random per-process key, compared in constant time,
// so later logins cost microseconds. The argon2id runs wait in a queue
// that is fair between clients (source address and login name) and puts a
// client whose last password was right first, then new clients, then
// clients whose last password was wrong. It re-reads the file whenever it
// changes on disk and then forgets every remembered success, so a removed
// password stops working at once. Last use is kept in memory and written by
// Flush, which the caller runs at most once a minute.
package apppass

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/mailkey/mailkey/internal/atomicfile"
	"github.com/mailkey/mailkey/internal/flock"
	"github.com/mailkey/mailkey/internal/secperm"
)

// FileName is the app password file in the state folder.
const FileName = "apppasswords.json"

// lockName is the cross-process lock beside it; it is never removed.
const lockName = "apppasswords.lock"

// Limits.
const (
	// maxFileSize bounds the file: an entry is about 300 bytes, so this
	// holds thousands.
	maxFileSize = 4 << 20
	// maxLabel bounds a label, which is shown in tables.
	maxLabel = 64
	// passwordGroups of groupLen symbols from a 32-symbol alphabet:
	// 4·5·5 = 100 bits.
	passwordGroups = 4
	groupLen       = 5
	saltLen        = 16
)

// alphabet has 32 symbols, without l, o, 0 and 1, which people misread.
const alphabet = "abcdefghijkmnpqrstuvwxyz23456789"

// Params are argon2id parameters (RFC 9106 §3.1). Memory is in KiB.
type Params struct {
	Time    uint32 `json:"t"`
	Memory  uint32 `json:"m"`
	Threads uint8  `json:"p"`
	KeyLen  uint32 `json:"len"`
}

// DefaultParams is RFC 9106 §4's second recommended option, for machines
// that cannot spare 2 GiB per hash: t=3, m=64 MiB, p=4, 256-bit tag.
var DefaultParams = Params{Time: 3, Memory: 64 << 10, Threads: 4, KeyLen: 32}

// Limits on parameters read from the file: a tampered file must not make
// the proxy allocate gigabytes or loop for minutes per login.
const (
	maxMemory = 1 << 20 // KiB: 1 GiB
	maxTime   = 16
)

func (p Params) valid() bool {
	return p.Time >= 1 && p.Time <= maxTime && p.Memory >= 8*uint32(p.Threads) && p.Memory <= maxMemory &&
		p.Threads >= 1 && p.KeyLen >= 16 && p.KeyLen <= 64
}

var (
	// ErrNotFound reports that no app password matches an account and
	// label or id.
	ErrNotFound = errors.New("no such app password")
	// ErrLabelTaken reports a label the account already uses.
	ErrLabelTaken = errors.New("the account already has an app password with this label")
	// ErrBadLabel reports a label that is empty, too long or holds
	// control characters.
	ErrBadLabel = errors.New("invalid label")
	// ErrNoMatch reports a login whose password matches none of the
	// account's app passwords, or an unknown login.
	ErrNoMatch = errors.New("invalid app password")
)

// CorruptError reports a file that is not an app password file.
type CorruptError struct {
	Path   string
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("app password file %s is unreadable: %s", e.Path, e.Reason)
}

// PermissionError reports a file or folder that group or others can
// access. Its message carries the chmod to run.
type PermissionError = secperm.Error

// Entry is one stored app password: its hash, never the password.
type Entry struct {
	ID       string    `json:"id"`
	Account  string    `json:"account"`
	Label    string    `json:"label"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
	Params   Params    `json:"argon2id"`
	Salt     []byte    `json:"salt"`
	Hash     []byte    `json:"hash"`
}

// Info is what may be shown about an app password.
type Info struct {
	ID       string    `json:"id"`
	Account  string    `json:"account"`
	Label    string    `json:"label"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

func (e *Entry) info() Info {
	return Info{ID: e.ID, Account: e.Account, Label: e.Label, Created: e.Created, LastUsed: e.LastUsed}
}

// document is the file's JSON.
type document struct {
	Version   int      `json:"version"`
	Passwords []*Entry `json:"passwords"`
}

const version = 1

// File is the app password file of one state folder.
type File struct {
	dir    string
	path   string
	params Params
	now    func() time.Time
}

// Open returns the app password file in dir. It does no I/O.
func Open(dir string) *File {
	return &File{dir: dir, path: filepath.Join(dir, FileName), params: DefaultParams, now: time.Now}
}

// Path is the file's path.
func (f *File) Path() string { return f.path }

// SetParams changes the argon2id parameters of passwords added from now on
// (tests use cheap ones). Invalid parameters are ignored.
func (f *File) SetParams(p Params) {
	if p.valid() {
		f.params = p
	}
}

// Generate returns a new random password: four groups of five symbols
// joined by dashes, 100 bits.
func Generate() (string, error) {
	var raw [passwordGroups * groupLen]byte
	if _, err := io.ReadFull(rand.Reader, raw[:]); err != nil {
		return "", err
	}
	var b strings.Builder
	for i, c := range raw {
		if i > 0 && i%groupLen == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(alphabet[c&31]) // 256 is a multiple of 32: uniform
	}
	return b.String(), nil
}

// normalize is the form that is hashed: what a person might type back
// (spaces, dashes, capitals) does not matter.
func normalize(password string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case 'A' <= r && r <= 'Z':
			return r + ('a' - 'A')
		}
		return r
	}, password)
}

func hash(password string, salt []byte, p Params) []byte {
	return argon2.IDKey([]byte(normalize(password)), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

// matches runs argon2id and compares in constant time.
func (e *Entry) matches(password string) bool {
	if !e.Params.valid() || len(e.Salt) == 0 || len(e.Hash) != int(e.Params.KeyLen) {
		return false
	}
	return subtle.ConstantTimeCompare(hash(password, e.Salt, e.Params), e.Hash) == 1
}

func checkLabel(label string) error {
	if label == "" || len(label) > maxLabel || strings.TrimSpace(label) != label {
		return ErrBadLabel
	}
	for _, r := range label {
		if r < 0x20 || r == 0x7f {
			return ErrBadLabel
		}
	}
	return nil
}

// Add creates an app password for account and returns it: the only time it
// exists outside the caller's memory. An empty label becomes "app", or
// "app-2", "app-3"… when taken.
func (f *File) Add(ctx context.Context, account, label string) (string, Info, error) {
	auto := label == ""
	if !auto {
		if err := checkLabel(label); err != nil {
			return "", Info{}, err
		}
	}
	password, err := Generate()
	if err != nil {
		return "", Info{}, err
	}
	salt := make([]byte, saltLen)
	if _, err := io.ReadFull(rand.Reader, salt); err != nil {
		return "", Info{}, err
	}
	e := &Entry{Account: account, Created: f.now().UTC().Truncate(time.Second), Params: f.params, Salt: salt}
	e.Hash = hash(password, salt, f.params)
	e.ID = newID()
	err = f.update(ctx, func(doc *document) error {
		used := map[string]bool{}
		for _, o := range doc.Passwords {
			if o.Account == account {
				used[o.Label] = true
			}
		}
		if auto {
			label = "app"
			for n := 2; used[label]; n++ {
				label = fmt.Sprintf("app-%d", n)
			}
		} else if used[label] {
			return ErrLabelTaken
		}
		e.Label = label
		doc.Passwords = append(doc.Passwords, e)
		return nil
	})
	if err != nil {
		return "", Info{}, err
	}
	return password, e.info(), nil
}

func newID() string { return strings.ToLower(rand.Text()[:8]) }

// List returns the app passwords of account, or of every account when
// account is "", sorted by account and creation.
func (f *File) List(account string) ([]Info, error) {
	doc, _, err := f.read()
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, e := range doc.Passwords {
		if account == "" || e.Account == account {
			out = append(out, e.info())
		}
	}
	slices.SortStableFunc(out, func(a, b Info) int {
		if c := strings.Compare(a.Account, b.Account); c != 0 {
			return c
		}
		return a.Created.Compare(b.Created)
	})
	return out, nil
}

// Remove revokes the account's app password whose label or id is
// labelOrID, and returns what it was.
func (f *File) Remove(ctx context.Context, account, labelOrID string) (Info, error) {
	var removed Info
	err := f.update(ctx, func(doc *document) error {
		i := slices.IndexFunc(doc.Passwords, func(e *Entry) bool {
			return e.Account == account && e.Label == labelOrID
		})
		if i < 0 {
			i = slices.IndexFunc(doc.Passwords, func(e *Entry) bool {
				return e.Account == account && e.ID == strings.ToLower(labelOrID)
			})
		}
		if i < 0 {
			return ErrNotFound
		}
		removed = doc.Passwords[i].info()
		doc.Passwords = slices.Delete(doc.Passwords, i, i+1)
		return nil
	})
	return removed, err
}

// read reads the file; a missing file is an empty document. It returns
// the file's stat for change detection (nil when missing).
func (f *File) read() (*document, os.FileInfo, error) {
	b, fi, err := secperm.ReadFile(f.path, maxFileSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &document{Version: version}, nil, nil
	case errors.Is(err, secperm.ErrTooLarge):
		return nil, nil, &CorruptError{Path: f.path, Reason: "file too large"}
	case err != nil:
		return nil, nil, err
	}
	var doc document
	if err := json.Unmarshal(b, &doc); err != nil {
		// The JSON error may quote a byte of a hash, never a password; keep
		// it out anyway.
		return nil, nil, &CorruptError{Path: f.path, Reason: "not valid JSON"}
	}
	if doc.Version != version {
		return nil, nil, &CorruptError{Path: f.path, Reason: fmt.Sprintf("unknown version %d", doc.Version)}
	}
	doc.Passwords = slices.DeleteFunc(doc.Passwords, func(e *Entry) bool { return e == nil })
	return &doc, fi, nil
}

// update changes the file under its lock: read, change, atomic write.
func (f *File) update(ctx context.Context, change func(*document) error) error {
	_, err := f.updateStat(ctx, change)
	return err
}

// updateStat is update that returns the written file's stat.
func (f *File) updateStat(ctx context.Context, change func(*document) error) (os.FileInfo, error) {
	if err := secperm.EnsureDir(f.dir); err != nil {
		return nil, err
	}
	unlock, err := flock.Lock(ctx, filepath.Join(f.dir, lockName))
	if err != nil {
		return nil, err
	}
	defer unlock()
	doc, _, err := f.read()
	if err != nil {
		return nil, err
	}
	if err := change(doc); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(f.path, append(b, '\n'), 0o600); err != nil {
		return nil, err
	}
	return os.Stat(f.path)
}
