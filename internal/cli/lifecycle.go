package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mailkey/mailkey/internal/oauth"
	"github.com/mailkey/mailkey/internal/tokens"
)

// drainTimeout bounds how long an exiting mailkey waits for token requests it
// has sent: longer than a refresh flight may take, so that only a provider
// that never answers is given up on.
const drainTimeout = 3 * time.Minute

// exitSignals end a command: Ctrl-C, a service manager's stop, a closed
// terminal. The first one cancels the command; a token request already sent
// is still seen through to the store before the process exits.
var exitSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

// lifecycle is what outlives a command's Run: the token managers whose sent
// requests must reach the store before the process exits.
type lifecycle struct {
	mu   sync.Mutex
	mgrs []*tokens.Manager

	// again receives the signals after the first; nil when no signals are
	// watched (tests that call run).
	again <-chan os.Signal

	// Work outside the managers that must not be abandoned either (a login's
	// token request and its save): account → count, and a channel closed
	// when the last one ends.
	sent map[string]int
	idle chan struct{}

	announced bool // the wait was announced when the signal came

	// startWatch starts watching the exit signals, once; nil when no
	// signals are watched (tests that call run). See watch.
	startWatch func()
}

// watch makes the exit signals cancel the command's context from now on
// instead of ending the process. Every command but the quick ones calls it
// before it runs; mailkey token calls it only once it may have to wait, since
// watching costs a start-up that most of its calls do not need, and until
// then no token request is out that a signal could lose.
func (l *lifecycle) watch() {
	if l != nil && l.startWatch != nil {
		l.startWatch()
	}
}

// announce says on stderr which token refreshes an exiting mailkey waits for,
// once; it says nothing when none is out.
func (l *lifecycle) announce(stderr io.Writer) {
	pending := l.inFlight()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(pending) == 0 || l.announced {
		return
	}
	l.announced = true
	fmt.Fprintf(stderr, "mailkey: waiting for the provider to answer the token refresh of %s, so that the new refresh token is saved; interrupt again to quit now, which may lose the grant\n",
		strings.Join(pending, ", "))
}

// seeThrough marks work for account that must finish before the process
// exits: a token request about to be sent outside a manager, and storing
// its answer. The returned context is not cancelled by a signal (only by
// drainTimeout); call end when the answer is stored or dropped.
func (e *env) seeThrough(account string) (ctx context.Context, end func()) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), drainTimeout)
	ctx = oauth.WithPatience(ctx, drainTimeout) // the answer is waited for, not abandoned
	l := e.life
	if l == nil {
		return ctx, cancel
	}
	l.mu.Lock()
	if l.sent == nil {
		l.sent = map[string]int{}
	}
	if len(l.sent) == 0 {
		l.idle = make(chan struct{})
	}
	l.sent[account]++
	l.mu.Unlock()
	return ctx, sync.OnceFunc(func() {
		cancel()
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.sent[account]--; l.sent[account] <= 0 {
			delete(l.sent, account)
		}
		if len(l.sent) == 0 && l.idle != nil {
			close(l.idle)
			l.idle = nil
		}
	})
}

func (l *lifecycle) track(m *tokens.Manager) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mgrs = append(l.mgrs, m)
}

// inFlight returns the accounts with a token request sent and not yet stored.
func (l *lifecycle) inFlight() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var accounts []string
	for _, m := range l.mgrs {
		accounts = append(accounts, m.InFlight()...)
	}
	for a := range l.sent {
		accounts = append(accounts, a)
	}
	slices.Sort(accounts)
	return slices.Compact(accounts)
}

// settle waits, before the process exits, until every token request sent
// is answered and stored. It says on stderr what it waits for; a second
// signal ends the wait at once, after saying what that risks. It returns
// the signal that forced the exit, or nil.
func (l *lifecycle) settle(stderr io.Writer) os.Signal {
	l.mu.Lock()
	mgrs := slices.Clone(l.mgrs)
	idle := l.idle
	l.mu.Unlock()
	if len(mgrs) == 0 && idle == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	done := make(chan []string, 1)
	go func() {
		var lost []string
		for _, m := range mgrs {
			in, _ := m.Drain(ctx)
			lost = append(lost, in...)
		}
		if idle != nil {
			select {
			case <-idle:
			case <-ctx.Done():
				l.mu.Lock()
				for a := range l.sent {
					lost = append(lost, a)
				}
				l.mu.Unlock()
			}
		}
		done <- lost
	}()
	// Most exits have nothing in flight: say nothing then.
	select {
	case lost := <-done:
		if len(lost) == 0 {
			return nil
		}
		l.warnLost(stderr, lost, fmt.Sprintf("the provider did not answer within %s", drainTimeout))
		return nil
	default:
	}
	l.announce(stderr)
	select {
	case lost := <-done:
		if len(lost) > 0 {
			l.warnLost(stderr, lost, fmt.Sprintf("the provider did not answer within %s", drainTimeout))
		}
		return nil
	case sig := <-l.again:
		l.warnLost(stderr, l.inFlight(), "quit before the provider answered")
		return sig
	}
}

func (l *lifecycle) warnLost(stderr io.Writer, accounts []string, why string) {
	for _, a := range accounts {
		fmt.Fprintf(stderr, "mailkey: error: %s: the token refresh of %s was not saved; if the provider replaced its refresh token, the account needs a new login\n", why, a)
		fmt.Fprintf(stderr, "mailkey: hint: mailkey token %s (if it fails: mailkey login %s)\n", a, a)
	}
}

// watchSignals returns a context that the first exit signal cancels (and
// says on stderr what an exit then waits for), and passes later signals to
// l.again, once watch has been called. Writes to a closed pipe fail with
// EPIPE instead of killing the process: a mail client that stops reading
// must not interrupt a refresh. stop undoes it.
func (l *lifecycle) watchSignals(stderr io.Writer) (ctx context.Context, stop func()) {
	signal.Ignore(syscall.SIGPIPE)
	sigs := make(chan os.Signal, 4)
	again := make(chan os.Signal, 4)
	l.again = again
	ctx, cancel := context.WithCancel(context.Background())
	quit := make(chan struct{})
	l.startWatch = sync.OnceFunc(func() {
		signal.Notify(sigs, exitSignals...)
		go l.relay(sigs, again, quit, cancel, stderr)
	})
	return ctx, func() {
		signal.Stop(sigs)
		close(quit)
		cancel()
	}
}

// relay cancels the command on the first signal of sigs and passes the
// later ones to again, until quit is closed.
func (l *lifecycle) relay(sigs <-chan os.Signal, again chan<- os.Signal, quit <-chan struct{}, cancel func(), stderr io.Writer) {
	first := true
	for {
		select {
		case s := <-sigs:
			if first {
				first = false
				cancel()
				l.announce(stderr)
				continue
			}
			select {
			case again <- s:
			default:
			}
		case <-quit:
			return
		}
	}
}

// signalStatus is the shell's exit status for a process ended by sig.
func signalStatus(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 130
}
