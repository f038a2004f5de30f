package apppass

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Verifier checks logins against the file for a long-running proxy. It is
// safe for concurrent use.
type Verifier struct {
	file *File
	// accounts maps a login name to the accounts it may mean.
	accounts func(login string) []string
	key      [32]byte
	sem      chan struct{} // bounds concurrent argon2id runs (64 MiB each)
	hashes   atomic.Int64  // argon2id runs, for tests

	mu      sync.Mutex
	loaded  bool
	fi      os.FileInfo // the file as last read; nil when missing
	gen     uint64      // bumped at every reload
	entries []*Entry
	cache   map[string][]cached // account → remembered successes
	used    map[string]time.Time
}

// cached is one remembered success: HMAC(key, account NUL password).
type cached struct {
	mac [sha256.Size]byte
	id  string
}

// NewVerifier returns a Verifier for the file. accounts maps a login name
// (an account name or an email address) to the accounts it may mean; a
// login that maps to none is refused. NewVerifier does no I/O.
func (f *File) NewVerifier(accounts func(login string) []string) *Verifier {
	v := &Verifier{
		file:     f,
		accounts: accounts,
		sem:      make(chan struct{}, max(1, runtime.NumCPU()/2)),
		cache:    map[string][]cached{},
		used:     map[string]time.Time{},
	}
	if _, err := rand.Read(v.key[:]); err != nil {
		panic("apppass: no randomness: " + err.Error()) // crypto/rand never fails on supported systems
	}
	return v
}

func (v *Verifier) mac(account, password string) [sha256.Size]byte {
	h := hmac.New(sha256.New, v.key[:])
	h.Write([]byte(account))
	h.Write([]byte{0})
	h.Write([]byte(normalize(password)))
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// sync re-reads the file when it changed on disk (a new inode, size or
// modification time), dropping every remembered success. The caller holds
// v.mu.
func (v *Verifier) sync() error {
	fi, err := os.Stat(v.file.path)
	switch {
	case err != nil && os.IsNotExist(err):
		fi = nil
	case err != nil:
		return err
	}
	if v.loaded && sameFile(v.fi, fi) {
		return nil
	}
	doc, readFI, err := v.file.read()
	if err != nil {
		return err
	}
	v.install(doc, readFI)
	return nil
}

// install replaces the entries; the caller holds v.mu.
func (v *Verifier) install(doc *document, fi os.FileInfo) {
	v.entries = doc.Passwords
	v.fi = fi
	v.loaded = true
	v.gen++
	clear(v.cache)
}

func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// Verify returns the account that login and password open, or ErrNoMatch.
// Other errors mean the file could not be read. Errors never hold the
// password.
func (v *Verifier) Verify(ctx context.Context, login, password string) (string, error) {
	candidates := v.accounts(login)
	if len(candidates) == 0 || password == "" {
		return "", ErrNoMatch
	}
	v.mu.Lock()
	if err := v.sync(); err != nil {
		v.mu.Unlock()
		return "", err
	}
	gen := v.gen
	type try struct {
		account string
		e       *Entry
	}
	var tries []try
	for _, acct := range candidates {
		mac := v.mac(acct, password)
		hit := ""
		for _, c := range v.cache[acct] {
			if hmac.Equal(c.mac[:], mac[:]) {
				hit = c.id
			}
		}
		if hit != "" {
			v.used[hit] = v.file.now()
			v.mu.Unlock()
			return acct, nil
		}
		for _, e := range v.entries {
			if e.Account == acct {
				tries = append(tries, try{acct, e})
			}
		}
	}
	v.mu.Unlock()

	for _, t := range tries {
		select {
		case v.sem <- struct{}{}:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		v.hashes.Add(1)
		ok := t.e.matches(password)
		<-v.sem
		if !ok {
			continue
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		// The file may have changed while argon2id ran: only a password
		// that is still there counts.
		if v.gen != gen && !slices.ContainsFunc(v.entries, func(e *Entry) bool { return e.ID == t.e.ID && e.Account == t.account }) {
			return "", ErrNoMatch
		}
		v.cache[t.account] = append(v.cache[t.account], cached{mac: v.mac(t.account, password), id: t.e.ID})
		v.used[t.e.ID] = v.file.now()
		return t.account, nil
	}
	return "", ErrNoMatch
}

// Forget drops every remembered success, so the next login of each
// password runs argon2id again.
func (v *Verifier) Forget() {
	v.mu.Lock()
	defer v.mu.Unlock()
	clear(v.cache)
}

// Flush writes the last-use times gathered since the previous Flush. Call
// it periodically (once a minute) and at shutdown; it writes nothing when
// no password was used.
func (v *Verifier) Flush(ctx context.Context) error {
	v.mu.Lock()
	used := v.used
	v.used = map[string]time.Time{}
	v.mu.Unlock()
	if len(used) == 0 {
		return nil
	}
	var written *document
	fi, err := v.file.updateStat(ctx, func(doc *document) error {
		for _, e := range doc.Passwords {
			if t, ok := used[e.ID]; ok && t.After(e.LastUsed) {
				e.LastUsed = t.UTC().Truncate(time.Second)
			}
		}
		written = doc
		return nil
	})
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		for id, t := range used { // try again next time
			if t.After(v.used[id]) {
				v.used[id] = t
			}
		}
		return err
	}
	// What was written is what was read under the lock, which may hold
	// changes made by another process: install it only when it does (our
	// own write must not drop the remembered successes).
	if !v.sameEntries(written.Passwords) {
		v.install(written, fi)
	} else {
		v.entries = written.Passwords
		v.fi = fi
	}
	return nil
}

// sameEntries reports whether es holds the same passwords as v.entries;
// the caller holds v.mu.
func (v *Verifier) sameEntries(es []*Entry) bool {
	if len(es) != len(v.entries) {
		return false
	}
	for i, e := range es {
		o := v.entries[i]
		if e.ID != o.ID || e.Account != o.Account || !hmac.Equal(e.Hash, o.Hash) {
			return false
		}
	}
	return true
}
