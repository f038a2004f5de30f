package server

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/internal/tokens"
)

// TestNotifyEdges: a refresher's findings become events on their edges
// only: one needs-login however often the account is looked at, a
// reminder once the reminder's time has passed, refresh-failing only after
// failingAfter transient failures in a row, one expiry-warning per grant
// end, and recovered when it works again.
func TestNotifyEdges(t *testing.T) {
	clock := &simClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	n := newNotifier(24*time.Hour, 72*time.Hour, slog.New(slog.DiscardHandler))
	n.now = clock.Now
	tok := &dueTokens{}
	r := newRefresher("work", tok, 5*time.Minute, slog.New(slog.DiscardHandler), newMetrics())
	r.email, r.notify, r.command = "alice@example.test", n, func(Step, string) string { return "mailkey login work" }
	// A sink makes observe queue the events; drain reads them off the
	// queue instead of delivering them.
	var got []Notification
	n.sinks = []func(context.Context, Notification) error{func(context.Context, Notification) error { return nil }}
	drain := func() []string {
		var ev []string
		for {
			select {
			case e := <-n.queue:
				got = append(got, e)
				ev = append(ev, e.Event)
			default:
				return ev
			}
		}
	}
	step := func(name string, rec *store.Record, err error, want ...string) {
		t.Helper()
		tok.rec, tok.err = rec, err
		r.check(context.Background())
		if ev := drain(); !slices.Equal(ev, want) {
			t.Errorf("%s: events %q, want %q", name, ev, want)
		}
	}
	fresh := func() *store.Record {
		return &store.Record{AccessToken: tok1, Expiry: clock.Now().Add(time.Hour)}
	}
	dead := &tokens.NeedsLoginError{Account: "work", Code: "invalid_grant"}
	transient := &tokens.TransientError{Account: "work", Err: errors.New("HTTP 503")}

	step("first look, fine", fresh(), nil)
	step("grant revoked", nil, dead, EventNeedsLogin)
	step("still revoked", nil, dead)
	clock.t = clock.t.Add(23 * time.Hour)
	step("a day later, nearly", nil, dead)
	clock.t = clock.t.Add(time.Hour)
	step("a day later", nil, dead, EventNeedsLogin)
	step("logged in again", fresh(), nil, EventRecovered)
	step("fine", fresh(), nil)
	step("provider down once", nil, transient)
	step("provider down twice", nil, transient)
	step("provider down thrice", nil, transient, EventRefreshFailing)
	step("provider down still", nil, transient)
	step("provider back", fresh(), nil, EventRecovered)
	end := fresh()
	end.RefreshExpiry = clock.Now().Add(48 * time.Hour)
	step("grant ends in two days", end, nil, EventExpiryWarning)
	step("grant ends in two days, again", end, nil)
	step("client rejected", nil, &tokens.ClientConfigError{Account: "work", Code: "invalid_client"}, EventRefreshFailing)

	for _, e := range got {
		if e.Account != "work" || e.Email != "alice@example.test" || e.Message == "" {
			t.Errorf("notification %+v: account, email or message missing", e)
		}
	}
	if !strings.Contains(got[0].Message, "mailkey login work") {
		t.Errorf("needs-login message %q does not say what to run", got[0].Message)
	}
}

// TestNotifyCommandEnv: the notify command gets the account, the address,
// the event and the message in its environment, and none of the secrets
// in serve's own: no MAILKEY_PASSPHRASE, no token, nothing named like a
// secret.
func TestNotifyCommandEnv(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the command runs through /bin/sh here")
	}
	const passphrase = "correct-horse-battery-staple-passphrase"
	t.Setenv("MAILKEY_PASSPHRASE", passphrase)
	t.Setenv("GITHUB_TOKEN", tok1)
	t.Setenv("SMTP_PASSWORD", "hunter2-smtp-password")
	t.Setenv("MAILKEY_CONFIG", "/etc/mailkey/config.toml")
	out := filepath.Join(t.TempDir(), "env")
	sink := commandSink("env > " + out)
	n := Notification{Account: "work", Email: "alice@example.test", Event: EventNeedsLogin,
		Message: "work: needs a login (run mailkey login work)", Time: time.Now()}
	if err := sink(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	env := string(b)
	for _, want := range []string{"MAILKEY_ACCOUNT=work\n", "MAILKEY_EMAIL=alice@example.test\n", "MAILKEY_EVENT=needs-login\n",
		"MAILKEY_MESSAGE=work: needs a login (run mailkey login work)\n", "MAILKEY_CONFIG=/etc/mailkey/config.toml\n", "MAILKEY_TIME="} {
		if !strings.Contains(env, want) {
			t.Errorf("the command's environment lacks %q", want)
		}
	}
	for _, secret := range []string{passphrase, tok1, "hunter2-smtp-password", "MAILKEY_PASSPHRASE"} {
		if strings.Contains(env, secret) {
			t.Errorf("the command's environment holds %q", secret)
		}
	}
}

// A command that fails is reported, and the next notification still runs.
func TestNotifyCommandFails(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the command runs through /bin/sh here")
	}
	log := &syncBuf{}
	n := newNotifier(0, 0, slog.New(slog.NewTextHandler(log, nil)))
	out := filepath.Join(t.TempDir(), "events")
	n.sinks = append(n.sinks, commandSink(`echo "$MAILKEY_EVENT" >> `+out+`; test "$MAILKEY_EVENT" != needs-login`))
	ctx, cancel := context.WithCancel(context.Background())
	n.observe("work", "", condNeedsLogin, "work: needs a login", time.Time{})
	n.observe("work", "", condOK, "work: works again", time.Time{})
	cancel()
	n.run(ctx) // delivers what is queued, then returns
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "needs-login\nrecovered\n" {
		t.Errorf("the command ran for %q", b)
	}
	if !strings.Contains(log.String(), `msg="notification not delivered" account=work event=needs-login error="exit status 1"`) {
		t.Errorf("the failed command is not logged:\n%s", log)
	}
}
