package clitest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// tortureKills is how many processes TestTorture kills per signal: MAILKEY_TORTURE_KILLS, else
// a short run for CI. docs/reliability.md records a full run.
func tortureKills(t *testing.T) int {
	if v := os.Getenv("MAILKEY_TORTURE_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("MAILKEY_TORTURE_KILLS=%q: want a positive number", v)
		}
		return n
	}
	return 17
}

// victim is a way mailkey sends a refresh: the process the test starts and signals, and
// whether the signal goes to its whole process group (as a terminal or a mail client sends it).
type victim struct {
	name  string
	args  []string
	group bool
}

var (
	refresher  = victim{"background-refresh", []string{"background-refresh", "work"}, false}
	helper     = victim{"token (process group)", []string{"token", "work", "--wait", "0"}, true}
	inProcess  = victim{"test --imap (process group)", []string{"test", "work", "--imap"}, true}
	tortureFor = map[syscall.Signal][]victim{
		// SIGKILL hits the process that sends the request and writes the answer.
		syscall.SIGKILL: {refresher},
		syscall.SIGTERM: {refresher, helper, inProcess},
		syscall.SIGINT:  {helper, inProcess, refresher},
	}
)

// tempLeft returns the temporary files left in the token folder.
func tempLeft(t *testing.T, m *mk) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(m.State, "tokens"))
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			left = append(left, e.Name())
		}
	}
	return left
}

// TestTorture kills refreshing mailkey processes at random points, against a provider that
// rotates the refresh token on every use and revokes the grant when a spent one comes back,
// and counts the grants lost. SIGTERM and SIGINT must lose none: a sent refresh is seen through
// to the store. SIGKILL can lose a grant only between the provider's answer and the write;
// those are counted and logged, not asserted, in the short run. After each kill the next
// mailkey command must leave no temporary file behind.
//
//	MAILKEY_E2E=1 MAILKEY_TORTURE_KILLS=300 go test -run TestTorture -v -timeout 60m ./test/e2e/clitest/
//
// MAILKEY_TORTURE_SIGNALS=KILL (or TERM,INT) picks the signals; MAILKEY_TORTURE_SEED repeats a
// run's kill points.
func TestTorture(t *testing.T) {
	t.Parallel()
	kills := tortureKills(t)
	s := e2e.Start(t, e2e.WithAccessTokenTTL(time.Hour))
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	const acct = "work"
	m := newMailkey(t, leaks, "")
	m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
	m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)

	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("MAILKEY_TORTURE_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	t.Logf("seed %d (MAILKEY_TORTURE_SEED=%d repeats the kill points), %d kills per signal", seed, seed, kills)

	signals := []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGKILL}
	if v := os.Getenv("MAILKEY_TORTURE_SIGNALS"); v != "" { // e.g. KILL or TERM,INT
		signals = nil
		for _, name := range strings.Split(v, ",") {
			sig, ok := map[string]syscall.Signal{"TERM": syscall.SIGTERM, "INT": syscall.SIGINT, "KILL": syscall.SIGKILL}[strings.TrimSpace(name)]
			if !ok {
				t.Fatalf("MAILKEY_TORTURE_SIGNALS=%q: name TERM, INT or KILL", v)
			}
			signals = append(signals, sig)
		}
	}
	var summary []string
	for _, sig := range signals {
		lost, lostAnswered := 0, 0
		if _, err := s.TokenStats(true); err != nil {
			t.Fatal(err)
		}
		for i := range kills {
			v := tortureFor[sig][i%len(tortureFor[sig])]
			if _, err := s.RefreshAnswers(true); err != nil {
				t.Fatal(err)
			}
			m.EditRecord(ctx, acct, mailkeytest.Expired)
			p := m.start(ctx, v.args...)
			// A random point in the first 300 ms: before, during and after the request.
			time.Sleep(time.Duration(rng.Int64N(int64(300 * time.Millisecond))))
			pid := p.cmd.Process.Pid
			if v.group {
				pid = -pid
			}
			killedAt := time.Now()
			if err := syscall.Kill(pid, sig); err != nil && err != syscall.ESRCH {
				t.Fatal(err)
			}
			p.wait()

			// The next command: it must find a working grant, and leave no temporary file.
			r := m.Run(ctx, "", "token", acct, "--wait", "0")
			if left := tempLeft(t, m); len(left) > 0 {
				t.Errorf("%s kill %d (%s): temporary files left after the next command: %q", sig, i, v.name, left)
			}
			if r.Code != 0 {
				if !strings.Contains(r.Stderr, "needs a new login") {
					t.Fatalf("%s kill %d (%s): next mailkey token failed, and not for a lost grant: %s", sig, i, v.name, r)
				}
				lost++
				when := "while the provider was still answering, after it had rotated the refresh token"
				if answeredBefore(t, s, killedAt) {
					lostAnswered++
					when = "after the provider's answer had left"
				}
				t.Logf("%s kill %d (%s): grant lost, killed %s", sig, i, v.name, when)
				m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
				continue
			}
			m.Leaks.Secret("access token", strings.TrimSpace(r.Stdout))
		}
		st, err := s.TokenStats(false)
		if err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("%s: %d kills, %d refreshes answered by the provider, %d grants lost: %d after the provider's answer had left, %d while it was still answering",
			sig, kills, st["refresh_token.success"], lost, lostAnswered, lost-lostAnswered)
		summary = append(summary, line)
		t.Log(line)
		if sig != syscall.SIGKILL && lost > 0 {
			t.Errorf("%s lost %d grants; a sent refresh must be seen through", sig, lost)
		}
	}
	grantAlive(t, ctx, s, m, acct)
	t.Logf("summary (seed %d):\n%s", seed, strings.Join(summary, "\n"))
}

// answeredBefore reports whether the provider had sent the answer to a refresh (since the
// last RefreshAnswers reset) before t: a process killed after that lost the rotated refresh
// token in its own hands; one killed before it, while the provider was still answering.
func answeredBefore(t *testing.T, s *e2e.Stack, killed time.Time) bool {
	t.Helper()
	answers, err := s.RefreshAnswers(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range answers {
		if a.Finished && a.Sent.Before(killed) {
			return true
		}
	}
	return false
}
