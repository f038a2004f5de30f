package servetest

import (
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// TestServePasswordFlood: a client that sends the same wrong app password on 40 connections at
// once (a scanner with an old password, retrying) is refused every time at the cost of one
// argon2id run, and another client on the same address logs in meanwhile with its right one.
func TestServePasswordFlood(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	m := &mk{mailkeytest.New(t, leaks, "")}
	const acct = "work"
	m.addAccount(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	pw := m.addPassword(ctx, acct, "clients")
	srv := m.serve(ctx)

	const n = 40
	var conns []*raw
	for range n {
		c := dialRaw(t, srv.addr["imap"])
		c.until("* OK")
		conns = append(conns, c)
	}
	replies := make([]string, n)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tag := "f" + strconv.Itoa(i)
			if _, err := c.c.Write([]byte(tag + " LOGIN " + e2e.Alice + " old-password\r\n")); err != nil {
				replies[i] = err.Error()
				return
			}
			l, err := c.r.ReadString('\n')
			if err != nil {
				replies[i] = err.Error()
				return
			}
			replies[i] = strings.TrimRight(l, "\r\n")
		}()
	}
	c := dialRaw(t, srv.addr["imap"])
	c.until("* OK")
	c.send("a LOGIN " + acct + " " + pw + "\r\n")
	if l := c.until("a "); !strings.HasPrefix(l, "a OK") {
		t.Errorf("the other client's login during the flood: %q", l)
	}
	wg.Wait()
	for i, l := range replies {
		if !strings.HasPrefix(l, "f"+strconv.Itoa(i)+" NO ") {
			t.Errorf("flood login %d: %q, want NO", i, l)
		}
	}
	// One run for the wrong password, however often it came, and one for the right one.
	if v := srv.metric(t, "mailkey_app_password_hashes_total"); v != 2 {
		t.Errorf("mailkey_app_password_hashes_total = %v, want 2", v)
	}
	m.Leaks.Output("mailkey serve", srv.logs())
}
