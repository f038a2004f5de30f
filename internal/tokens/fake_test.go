package tokens

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/mailkey/mailkey/internal/store"
)

// memStore is an in-memory store.Store. Its Lock is a real per-account
// mutex, so two Managers sharing one memStore behave like two processes
// sharing a file store.
type memStore struct {
	mu      sync.Mutex
	recs    map[string]*store.Record
	locks   map[string]chan struct{}
	gets    int
	puts    int
	events  *eventLog
	putErr  error
	onLock  func(account string) // called before Lock blocks
	lockers int                  // Lock calls
}

func newMemStore() *memStore {
	return &memStore{recs: map[string]*store.Record{}, locks: map[string]chan struct{}{}}
}

func (s *memStore) Get(_ context.Context, account string) (*store.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	r, ok := s.recs[account]
	if !ok {
		return nil, fmt.Errorf("account %q: %w", account, store.ErrNotFound)
	}
	return clone(r), nil
}

func (s *memStore) Put(_ context.Context, rec *store.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.putErr != nil {
		return s.putErr
	}
	s.puts++
	s.recs[rec.Account] = clone(rec)
	if s.events != nil {
		s.events.add("put " + rec.AccessToken + " " + rec.RefreshToken)
	}
	return nil
}

func (s *memStore) Delete(_ context.Context, account string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.recs, account)
	return nil
}

func (s *memStore) List(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.recs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func (s *memStore) Lock(ctx context.Context, account string) (func(), error) {
	s.mu.Lock()
	s.lockers++
	l, ok := s.locks[account]
	if !ok {
		l = make(chan struct{}, 1)
		s.locks[account] = l
	}
	hook := s.onLock
	s.mu.Unlock()
	if hook != nil {
		hook(account)
	}
	select {
	case l <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() { once.Do(func() { <-l }) }, nil
}

func (s *memStore) Protection() string { return "memory (tests)" }

func (s *memStore) put(rec *store.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs[rec.Account] = clone(rec)
}

func (s *memStore) rec(account string) *store.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[account]
	if !ok {
		return nil
	}
	return clone(r)
}

func (s *memStore) counts() (gets, puts, locks int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets, s.puts, s.lockers
}

// eventLog records the order of things that happened across goroutines.
type eventLog struct {
	mu sync.Mutex
	ev []string
}

func (l *eventLog) add(e string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ev = append(l.ev, e)
}

func (l *eventLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ev)
}

// fakeSource counts calls and answers with fn.
type fakeSource struct {
	mu    sync.Mutex
	calls int
	seen  []*store.Record
	fn    func(ctx context.Context, n int, rec *store.Record) (*Fresh, error)
}

func (f *fakeSource) Refresh(ctx context.Context, rec *store.Record) (*Fresh, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.seen = append(f.seen, clone(rec))
	f.mu.Unlock()
	return f.fn(ctx, n, rec)
}

func (f *fakeSource) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func sourcesFor(src Source) func(string) (Source, error) {
	return func(account string) (Source, error) {
		if account == "unknown" {
			return nil, errors.New("no such account in the configuration")
		}
		return src, nil
	}
}

// oauthErr is an error like the oauth package's: it classifies itself.
type oauthErr struct {
	code, desc string
	permanent  bool
	retryAfter time.Duration
}

func (e *oauthErr) Error() string                   { return "token endpoint: " + e.code + ": " + e.desc }
func (e *oauthErr) Permanent() bool                 { return e.permanent }
func (e *oauthErr) RetryAfterHint() time.Duration   { return e.retryAfter }
func (e *oauthErr) OAuthError() (code, desc string) { return e.code, e.desc }

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// sleeps records the backoff delays without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return ctx.Err()
}

func (s *sleeps) list() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d)
}
