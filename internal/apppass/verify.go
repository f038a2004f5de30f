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
	queue    *hashQueue   // bounds concurrent argon2id runs (64 MiB each)
	hashes   atomic.Int64 // argon2id runs, for tests

	mu      sync.Mutex
	loaded  bool
	fi      os.FileInfo // the file as last read; nil when missing
	gen     uint64      // bumped at every reload
	entries []*Entry
	cache   map[string][]cached        // account → remembered successes
	wrong   map[[sha256.Size]byte]bool // HMAC(account, password) of remembered failures
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
		queue:    newHashQueue(runtime.NumCPU() / 2),
		cache:    map[string][]cached{},
		wrong:    map[[sha256.Size]byte]bool{},
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
	clear(v.wrong)
}

// maxWrong bounds the remembered failures; beyond it they are forgotten.
const maxWrong = 4096

// knownWrong reports whether password was refused for every one of
// candidates since the file was last read; the caller holds v.mu.
func (v *Verifier) knownWrong(candidates []string, password string) bool {
	for _, acct := range candidates {
		if !v.wrong[v.mac(acct, password)] {
			return false
		}
	}
	return true
}

func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// Verify returns the account that login and password open, or ErrNoMatch.
// Other errors mean the file could not be read, or ErrBusy. Errors never
// hold the password.
func (v *Verifier) Verify(ctx context.Context, login, password string) (string, error) {
	m, err := v.CheckFrom(ctx, "", login, password)
	return m.Account, err
}

// A Match is the app password a login used.
type Match struct {
	Account string
	Label   string
}

// CheckFrom is Verify for a login sent from source (an address), naming
// the app password that matched. The password checks of clients (source
// and login name) are queued fairly, so that wrong passwords sent by some
// never hold back the others, least of all a client whose last password
// was right (see hashQueue).
func (v *Verifier) CheckFrom(ctx context.Context, source, login, password string) (Match, error) {
	candidates := v.accounts(login)
	if len(candidates) == 0 || password == "" {
		return Match{}, ErrNoMatch
	}
	v.mu.Lock()
	if err := v.sync(); err != nil {
		v.mu.Unlock()
		return Match{}, err
	}
	gen := v.gen
	if m := v.remembered(candidates, password); m.Account != "" {
		v.mu.Unlock()
		return m, nil
	}
	client := clientKey(source, login)
	if v.knownWrong(candidates, password) {
		// A client that sends the same wrong password again (a scanner
		// with an old one, in a retry loop) costs no argon2id run.
		v.mu.Unlock()
		v.queue.record(client, false)
		return Match{}, ErrNoMatch
	}
	type try struct {
		account string
		e       *Entry
	}
	var tries []try
	for _, acct := range candidates {
		for _, e := range v.entries {
			if e.Account == acct {
				tries = append(tries, try{acct, e})
			}
		}
	}
	v.mu.Unlock()
	if len(tries) == 0 {
		return Match{}, ErrNoMatch
	}

	if err := v.queue.acquire(ctx, client); err != nil {
		return Match{}, err
	}
	defer v.queue.release()
	// Another connection of the same client may have had this password
	// checked while this one waited (mail clients open several at once).
	v.mu.Lock()
	if v.gen == gen {
		if m := v.remembered(candidates, password); m.Account != "" {
			v.mu.Unlock()
			return m, nil
		}
		if v.knownWrong(candidates, password) {
			v.mu.Unlock()
			v.queue.record(client, false)
			return Match{}, ErrNoMatch
		}
	}
	v.mu.Unlock()
	for _, t := range tries {
		if err := ctx.Err(); err != nil {
			return Match{}, err
		}
		v.hashes.Add(1)
		if !t.e.matches(password) {
			continue
		}
		v.queue.record(client, true)
		v.mu.Lock()
		defer v.mu.Unlock()
		// The file may have changed while argon2id ran: only a password
		// that is still there counts.
		if v.gen != gen && !slices.ContainsFunc(v.entries, func(e *Entry) bool { return e.ID == t.e.ID && e.Account == t.account }) {
			return Match{}, ErrNoMatch
		}
		v.cache[t.account] = append(v.cache[t.account], cached{mac: v.mac(t.account, password), id: t.e.ID})
		v.used[t.e.ID] = v.file.now()
		return Match{Account: t.account, Label: t.e.Label}, nil
	}
	v.queue.record(client, false)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.gen == gen {
		if len(v.wrong)+len(candidates) > maxWrong {
			clear(v.wrong)
		}
		for _, acct := range candidates {
			v.wrong[v.mac(acct, password)] = true
		}
	}
	return Match{}, ErrNoMatch
}

// remembered returns the first of candidates that password opened before,
// with the password's label, marking the password used; the caller holds
// v.mu.
func (v *Verifier) remembered(candidates []string, password string) Match {
	for _, acct := range candidates {
		mac := v.mac(acct, password)
		for _, c := range v.cache[acct] {
			if hmac.Equal(c.mac[:], mac[:]) {
				v.used[c.id] = v.file.now()
				return Match{Account: acct, Label: v.label(c.id)}
			}
		}
	}
	return Match{}
}

// label is the label of the entry with id; the caller holds v.mu.
func (v *Verifier) label(id string) string {
	for _, e := range v.entries {
		if e.ID == id {
			return e.Label
		}
	}
	return ""
}

// Hashes returns how many argon2id runs the Verifier has made.
func (v *Verifier) Hashes() int64 { return v.hashes.Load() }

// Forget drops every remembered success and failure, so the next login
// of each password runs argon2id again.
func (v *Verifier) Forget() {
	v.mu.Lock()
	defer v.mu.Unlock()
	clear(v.cache)
	clear(v.wrong)
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
