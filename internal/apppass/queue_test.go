package apppass

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
)

// waitQueued returns once q holds n waiting checks.
func waitQueued(q *hashQueue, n int) {
	for {
		q.mu.Lock()
		w := q.waiting
		q.mu.Unlock()
		if w == n {
			return
		}
		runtime.Gosched()
	}
}

// grants runs one acquire per client in clients, in that order, while the
// only slot is held, then releases the slot once per waiter and returns
// the clients in the order they were granted a slot.
func grants(t *testing.T, q *hashQueue, clients ...string) []string {
	t.Helper()
	if err := q.acquire(context.Background(), "holder"); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
		next  = make(chan struct{})
	)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := q.acquire(context.Background(), c); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, c)
			mu.Unlock()
			next <- struct{}{}
		}()
		waitQueued(q, i+1) // enqueue in the order given
	}
	for range clients {
		q.release() // hand the slot to the next waiter, which records itself
		<-next
	}
	wg.Wait()
	q.release()
	return order
}

func TestHashQueueOrder(t *testing.T) {
	q := newHashQueue(1)
	q.record("flood", false)
	q.record("known", true)
	got := grants(t, q, "flood", "flood", "new", "flood", "known", "other")
	want := []string{"known", "new", "other", "flood", "flood", "flood"}
	if !equal(got, want) {
		t.Errorf("grant order %q, want %q", got, want)
	}
	// Among clients in the same standing, turns go round.
	got = grants(t, q, "a", "a", "a", "b", "c")
	want = []string{"a", "b", "c", "a", "a"}
	if !equal(got, want) {
		t.Errorf("grant order %q, want %q", got, want)
	}
	if q.free != 1 || q.waiting != 0 || len(q.lanes) != 0 {
		t.Errorf("queue not back to idle: free %d, waiting %d, lanes %d", q.free, q.waiting, len(q.lanes))
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestHashQueueBounds(t *testing.T) {
	q := newHashQueue(1)
	ctx, cancel := context.WithCancel(context.Background())
	if err := q.acquire(ctx, "holder"); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, maxWaitersPerClient)
	for i := range maxWaitersPerClient {
		go func() { errs <- q.acquire(ctx, "flood") }()
		waitQueued(q, i+1)
	}
	if err := q.acquire(ctx, "flood"); !errors.Is(err, ErrBusy) {
		t.Fatalf("check over the client's bound: %v, want ErrBusy", err)
	}
	// Callers that give up leave the queue.
	cancel()
	for range maxWaitersPerClient {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled waiter: %v", err)
		}
	}
	q.release()
	if q.free != 1 || q.waiting != 0 || len(q.lanes) != 0 {
		t.Errorf("queue not back to idle: free %d, waiting %d, lanes %d", q.free, q.waiting, len(q.lanes))
	}
}

// Several connections of one client with the same right password, all
// waiting at once, cost one argon2id run.
func TestVerifyConcurrentSameClient(t *testing.T) {
	ctx := context.Background()
	f := newFile(t)
	pw, _, err := f.Add(ctx, "work", "")
	if err != nil {
		t.Fatal(err)
	}
	v := f.NewVerifier(accountsOf)
	v.queue = newHashQueue(1)
	if err := v.queue.acquire(ctx, "holder"); err != nil {
		t.Fatal(err)
	}
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := v.CheckFrom(ctx, "127.0.0.1", "work", pw)
			errs <- err
		}()
		waitQueued(v.queue, i+1)
	}
	v.queue.release()
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := v.hashes.Load(); got != 1 {
		t.Errorf("%d argon2id runs for %d connections of one client, want 1", got, n)
	}
}

// A wrong password demotes its client, a right one promotes it.
func TestVerifyRecordsStanding(t *testing.T) {
	ctx := context.Background()
	f := newFile(t)
	pw, _, err := f.Add(ctx, "work", "")
	if err != nil {
		t.Fatal(err)
	}
	v := f.NewVerifier(accountsOf)
	if _, err := v.CheckFrom(ctx, "127.0.0.1", "work", pw+"x"); !errors.Is(err, ErrNoMatch) {
		t.Fatal(err)
	}
	if s := v.queue.standing[clientKey("127.0.0.1", "Work")]; s != failing {
		t.Errorf("after a wrong password: standing %d", s)
	}
	if _, err := v.CheckFrom(ctx, "127.0.0.1", "work", pw); err != nil {
		t.Fatal(err)
	}
	if s := v.queue.standing[clientKey("127.0.0.1", "work")]; s != known {
		t.Errorf("after the right password: standing %d", s)
	}
}

// The same wrong password sent again costs no argon2id run until the file
// changes; it never opens anything.
func TestVerifyRemembersWrongPassword(t *testing.T) {
	ctx := context.Background()
	f := newFile(t)
	pw, _, err := f.Add(ctx, "work", "")
	if err != nil {
		t.Fatal(err)
	}
	v := f.NewVerifier(accountsOf)
	for range 5 {
		if _, err := v.CheckFrom(ctx, "127.0.0.1", "work", "old-password"); !errors.Is(err, ErrNoMatch) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	if got := v.hashes.Load(); got != 1 {
		t.Errorf("%d argon2id runs for one wrong password sent 5 times, want 1", got)
	}
	// Under another login name of the same account it is still wrong, and
	// known to be.
	if _, err := v.CheckFrom(ctx, "127.0.0.1", "me@example.test", "old-password"); !errors.Is(err, ErrNoMatch) || v.hashes.Load() != 1 {
		t.Errorf("same wrong password by address: %v, %d runs", err, v.hashes.Load())
	}
	// A change of the file forgets it: the password may be valid now.
	if _, _, err := f.Add(ctx, "home", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := v.CheckFrom(ctx, "127.0.0.1", "work", "old-password"); !errors.Is(err, ErrNoMatch) || v.hashes.Load() != 2 {
		t.Errorf("after a change of the file: %v, %d runs, want 2", err, v.hashes.Load())
	}
	if _, err := v.CheckFrom(ctx, "127.0.0.1", "work", pw); err != nil {
		t.Errorf("right password after wrong ones: %v", err)
	}
}
