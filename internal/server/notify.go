package server

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/mailkey/mailkey/internal/audit"
)

// Notification events, named as pizauth names its own.
const (
	// EventNeedsLogin: no mail client of the account can log in until a
	// person signs it in again. Repeated every Config.NotifyReminder while
	// it lasts.
	EventNeedsLogin = "needs-login"
	// EventRefreshFailing: the token cannot be refreshed, and retrying
	// has not helped yet (the provider is down, or rejects the client).
	EventRefreshFailing = "refresh-failing"
	// EventExpiryWarning: the provider said when the grant dies, and that
	// is within Config.ExpiryWarning.
	EventExpiryWarning = "expiry-warning"
	// EventRecovered: an account that needed a login or failed to
	// refresh works again.
	EventRecovered = "recovered"
)

// Notification timing and limits.
const (
	// DefaultNotifyReminder repeats needs-login this often while it lasts.
	DefaultNotifyReminder = 24 * time.Hour
	// DefaultExpiryWarning warns this long before a grant's known end.
	DefaultExpiryWarning = 72 * time.Hour
	// failingAfter transient refresh failures in a row make the account
	// refresh-failing: one failure is what the backoff is for.
	failingAfter = 3
	// hookTimeout bounds one run of the notify command.
	hookTimeout = 30 * time.Second
	// notifyQueue notifications may wait for the hook; beyond that they
	// are dropped, with a warning, rather than holding up a refresher.
	notifyQueue = 64
)

// A Notification is one event about one account, for the notify command
// and the desktop. It never holds a secret.
type Notification struct {
	Account, Email, Event, Message string
	Time                           time.Time
}

// condition is what a check found of an account.
type condition int

const (
	condOK condition = iota
	condNeedsLogin
	condFailing
)

// alert is the last notified state of one account.
type alert struct {
	known     bool
	cond      condition
	sent      time.Time // when needs-login was last sent
	expiryFor time.Time // the grant end expiry-warning was sent for
}

// notifier turns the refreshers' findings into edge-triggered events: one
// when an account starts needing a person, a reminder every reminder while
// it does, one when it recovers.
type notifier struct {
	reminder, expiryWarning time.Duration
	now                     func() time.Time
	log                     *slog.Logger
	sinks                   []func(context.Context, Notification) error
	// audit records the grants lost and recovered; nil records none.
	audit *audit.Log

	mu     sync.Mutex
	alerts map[string]*alert
	queue  chan Notification
	wg     sync.WaitGroup
}

func newNotifier(reminder, expiryWarning time.Duration, log *slog.Logger) *notifier {
	if reminder <= 0 {
		reminder = DefaultNotifyReminder
	}
	if expiryWarning <= 0 {
		expiryWarning = DefaultExpiryWarning
	}
	return &notifier{reminder: reminder, expiryWarning: expiryWarning, now: time.Now, log: log,
		alerts: map[string]*alert{}, queue: make(chan Notification, notifyQueue)}
}

// observe records what a check of account found and sends what changed.
// grantEnd is when the provider said the grant dies (zero: unknown).
func (n *notifier) observe(account, email string, c condition, msg string, grantEnd time.Time) {
	now := n.now()
	n.mu.Lock()
	a := n.alerts[account]
	if a == nil {
		a = &alert{}
		n.alerts[account] = a
	}
	var events []Notification
	ev := func(event, msg string) {
		events = append(events, Notification{Account: account, Email: email, Event: event, Message: msg, Time: now})
	}
	switch c {
	case condOK:
		if a.known && a.cond != condOK {
			ev(EventRecovered, msg)
		}
		if a.known && a.cond == condNeedsLogin {
			n.audit.Record(audit.Event{Event: audit.GrantRecovered, Account: account, Time: now})
		}
	case condNeedsLogin:
		if !a.known || a.cond != condNeedsLogin || now.Sub(a.sent) >= n.reminder {
			ev(EventNeedsLogin, msg)
			a.sent = now
		}
		if !a.known || a.cond != condNeedsLogin {
			n.audit.Record(audit.Event{Event: audit.GrantLost, Account: account, Detail: msg, Time: now})
		}
	case condFailing:
		if !a.known || a.cond == condOK {
			ev(EventRefreshFailing, msg)
		}
	}
	a.known, a.cond = true, c
	if c == condOK && !grantEnd.IsZero() && grantEnd.Sub(now) < n.expiryWarning && !grantEnd.Equal(a.expiryFor) {
		a.expiryFor = grantEnd
		ev(EventExpiryWarning, "the grant of "+account+" ends at "+grantEnd.Local().Format(time.DateTime))
	}
	n.mu.Unlock()
	for _, e := range events {
		n.send(e)
	}
}

// forget drops what was notified of a removed account.
func (n *notifier) forget(account string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.alerts, account)
}

// send queues e for the sinks, and logs it.
func (n *notifier) send(e Notification) {
	n.log.Info("notification", "account", e.Account, "event", e.Event, "message", e.Message)
	if len(n.sinks) == 0 {
		return
	}
	select {
	case n.queue <- e:
	default:
		n.log.Warn("notification dropped: too many are waiting for the notify command", "account", e.Account, "event", e.Event)
	}
}

// run delivers queued notifications, one at a time and in order, until
// ctx is done; then it delivers what is queued already and returns.
func (n *notifier) run(ctx context.Context) {
	deliver := func(e Notification) {
		for _, sink := range n.sinks {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hookTimeout)
			if err := sink(sctx, e); err != nil {
				n.log.Warn("notification not delivered", "account", e.Account, "event", e.Event, "error", err.Error())
			}
			cancel()
		}
	}
	for {
		select {
		case e := <-n.queue:
			deliver(e)
		case <-ctx.Done():
			for {
				select {
				case e := <-n.queue:
					deliver(e)
				default:
					return
				}
			}
		}
	}
}

// commandSink runs command through the shell for each notification, with
// the event in its environment.
func commandSink(command string) func(context.Context, Notification) error {
	return func(ctx context.Context, e Notification) error {
		var cmd *exec.Cmd
		if runtime.GOOS == "windows" {
			cmd = exec.CommandContext(ctx, "cmd", "/C", command)
		} else {
			cmd = exec.CommandContext(ctx, "/bin/sh", "-c", command)
		}
		cmd.Env = hookEnv(os.Environ(), e)
		// What the command prints is its own business; a secret it
		// might print must not reach mailkey's log.
		return cmd.Run()
	}
}

// keptMailkeyVars are the MAILKEY_ variables a hook may inherit: where the
// configuration and the state are, so that it can run mailkey status.
var keptMailkeyVars = map[string]bool{"MAILKEY_CONFIG": true, "MAILKEY_STATE_DIR": true}

// secretNameParts mark inherited variables that may hold a secret; a hook
// never inherits them.
var secretNameParts = []string{"TOKEN", "SECRET", "PASSWORD", "PASSPHRASE", "PASSWD", "CREDENTIAL", "APIKEY", "API_KEY"}

// hookEnv is base without any variable that may hold a secret (among them
// MAILKEY_PASSPHRASE) and without mailkey's other variables, plus the
// notification's MAILKEY_ACCOUNT, MAILKEY_EMAIL, MAILKEY_EVENT,
// MAILKEY_MESSAGE and MAILKEY_TIME.
func hookEnv(base []string, e Notification) []string {
	out := make([]string, 0, len(base)+5)
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		upper := strings.ToUpper(name)
		if strings.HasPrefix(upper, "MAILKEY_") && !keptMailkeyVars[upper] {
			continue
		}
		if containsAny(upper, secretNameParts) {
			continue
		}
		out = append(out, kv)
	}
	return append(out,
		"MAILKEY_ACCOUNT="+e.Account,
		"MAILKEY_EMAIL="+e.Email,
		"MAILKEY_EVENT="+e.Event,
		"MAILKEY_MESSAGE="+e.Message,
		"MAILKEY_TIME="+e.Time.UTC().Format(time.RFC3339),
	)
}

func containsAny(s string, parts []string) bool {
	for _, p := range parts {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}
