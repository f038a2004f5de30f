package apppass

import (
	"context"
	"errors"
	"strings"
	"sync"
)

// ErrBusy means too many password checks are waiting already: the login
// should be refused as a temporary failure, to be tried again later.
var ErrBusy = errors.New("too many app password checks are waiting")

// Bounds of the hash queue.
const (
	// maxWaitersPerClient bounds the checks one client (source address and
	// login name) may have waiting; a mail client that opens a few
	// connections at once stays far below it.
	maxWaitersPerClient = 32
	// maxWaiting bounds the checks waiting in all.
	maxWaiting = 512
	// maxStanding bounds the clients whose last result is remembered.
	maxStanding = 4096
)

// standing is what the queue knows of a client: its last check's result.
type standing int8

const (
	failing standing = -1 // its last password check failed
	unknown standing = 0  // no check of it is remembered
	known   standing = 1  // its last password check succeeded
)

// hashQueue hands out the argon2id slots fairly. Waiting checks are
// grouped by client (source address and login name). A free slot goes to
// the client in the best standing (a known client first, then one not
// seen yet, then one whose last password was wrong) and among equals to
// the one served least recently (then the one waiting longest). So a flood of wrong passwords from some
// clients delays a known client's check by at most the checks already
// running, and another client's by at most one check per flooding client.
type hashQueue struct {
	mu       sync.Mutex
	free     int
	waiting  int
	seq      uint64 // grants
	arrivals uint64 // lanes made
	lanes    map[string]*lane
	standing map[string]standing
}

// lane holds one client's waiting checks, oldest first.
type lane struct {
	waiters []*waiter
	served  uint64 // q.seq at its last grant; 0 if never
	since   uint64 // q.arrivals when the lane was made
}

type waiter struct {
	ch      chan struct{}
	granted bool
}

func newHashQueue(slots int) *hashQueue {
	return &hashQueue{
		free:     max(1, slots),
		lanes:    map[string]*lane{},
		standing: map[string]standing{},
	}
}

// clientKey names a client: its source address and its login name, as
// logins are matched (case-folded).
func clientKey(source, login string) string {
	if len(login) > 256 {
		login = login[:256]
	}
	return source + "\x00" + strings.ToLower(login)
}

// acquire waits for a slot for client. It returns ErrBusy at once when
// the client, or everyone, has too many checks waiting, and ctx's error
// when ctx ends first.
func (q *hashQueue) acquire(ctx context.Context, client string) error {
	q.mu.Lock()
	if q.free > 0 && q.waiting == 0 {
		q.free--
		q.mu.Unlock()
		return nil
	}
	l := q.lanes[client]
	if l == nil {
		q.arrivals++
		l = &lane{since: q.arrivals}
		q.lanes[client] = l
	}
	if len(l.waiters) >= maxWaitersPerClient || q.waiting >= maxWaiting {
		if len(l.waiters) == 0 {
			delete(q.lanes, client)
		}
		q.mu.Unlock()
		return ErrBusy
	}
	w := &waiter{ch: make(chan struct{})}
	l.waiters = append(l.waiters, w)
	q.waiting++
	q.mu.Unlock()

	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	if w.granted { // the slot came as ctx ended: pass it on
		q.mu.Unlock()
		q.release()
		return ctx.Err()
	}
	for i, o := range l.waiters {
		if o == w {
			l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
			break
		}
	}
	q.waiting--
	if len(l.waiters) == 0 && q.lanes[client] == l {
		delete(q.lanes, client)
	}
	q.mu.Unlock()
	return ctx.Err()
}

// release gives a slot back: to the best waiting client, or to the pool.
func (q *hashQueue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	var (
		bestKey  string
		best     *lane
		bestRank standing
	)
	for k, l := range q.lanes {
		r := q.standing[k]
		if best == nil || r > bestRank || (r == bestRank && (l.served < best.served || l.served == best.served && l.since < best.since)) {
			bestKey, best, bestRank = k, l, r
		}
	}
	if best == nil {
		q.free++
		return
	}
	w := best.waiters[0]
	best.waiters = best.waiters[1:]
	q.waiting--
	q.seq++
	best.served = q.seq
	if len(best.waiters) == 0 {
		delete(q.lanes, bestKey)
	}
	w.granted = true
	close(w.ch)
}

// record remembers the result of a check of client's password.
func (q *hashQueue) record(client string, ok bool) {
	s := failing
	if ok {
		s = known
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, seen := q.standing[client]; !seen && len(q.standing) >= maxStanding {
		for k, v := range q.standing { // forget a failing client first
			if v == failing {
				delete(q.standing, k)
				break
			}
		}
		for k := range q.standing {
			if len(q.standing) < maxStanding {
				break
			}
			delete(q.standing, k)
		}
	}
	q.standing[client] = s
}
