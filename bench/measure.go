package main

import (
	"context"
	"fmt"
	"hash/crc32"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
)

// Measurement bounds.
const (
	fetchTimeout    = 10 * time.Minute // one full-mailbox fetch
	loginTimeout    = 30 * time.Second // one login
	openTimeout     = 60 * time.Second // one idle session's dial + login
	openWorkers     = 32               // sessions opened at once
	sessionsPerIP   = 50               // below the proxy's per-source-address cap (100)
	maxOpenFailures = 20               // failed session opens before a level gives up
	settleTime      = 3 * time.Second  // wait before reading RSS
	drainWait       = 60 * time.Second // wait for serve to close its sockets after a level
	fdReserve       = 32               // descriptors left to serve for listeners, files, logs
)

// target is where a measurement ends up: through the proxy or directly at Dovecot.
type target int

const (
	viaProxy target = iota
	direct
)

func (t target) String() string {
	if t == viaProxy {
		return "proxy"
	}
	return "direct"
}

// dial connects and logs in: plain LOGIN with the app password at the proxy, or TLS and
// AUTHENTICATE XOAUTH2 with the access token at Dovecot.
func (b *bench) dial(ctx context.Context, t target, local net.Addr) (*imapConn, error) {
	if t == viaProxy {
		c, err := dialIMAP(ctx, b.imapAddr, local, nil)
		if err != nil {
			return nil, err
		}
		if err := c.login(accountName, b.password); err != nil {
			c.Close()
			return nil, fmt.Errorf("proxy login: %w", err)
		}
		return c, nil
	}
	c, err := dialIMAP(ctx, b.upstream, local, b.stack.TLSConfig())
	if err != nil {
		return nil, err
	}
	if err := c.authXOAUTH2(e2e.Carol, b.token); err != nil {
		c.Close()
		return nil, fmt.Errorf("direct login: %w", err)
	}
	return c, nil
}

// fetchRun is one full-mailbox fetch.
type fetchRun struct {
	target target
	msgs   int
	bytes  int64
	crc    uint32 // CRC-32C of every body in order
	dur    time.Duration
	tls    string // TLS version of the client's own connection
	// CPU time the benchmark's client and mailkey serve used during the fetch
	clientCPU, serveCPU time.Duration
}

// cpuPerGB returns CPU seconds per 10^9 bytes fetched.
func (r fetchRun) cpuPerGB(d time.Duration) float64 { return d.Seconds() / (float64(r.bytes) / 1e9) }

func (r fetchRun) mbps() float64 { return float64(r.bytes) / 1e6 / r.dur.Seconds() }

// fetchOnce logs in, examines INBOX and times UID FETCH of every message in batches. Login
// and EXAMINE are not timed.
func (b *bench) fetchOnce(ctx context.Context, t target, batch int) (fetchRun, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	c, err := b.dial(ctx, t, nil)
	if err != nil {
		return fetchRun{}, err
	}
	defer c.Close()
	_, uidNext, err := c.examine("INBOX")
	if err != nil {
		return fetchRun{}, err
	}
	sum := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	pid := b.serve.pid()
	serve0, err := procCPU(pid)
	if err != nil {
		return fetchRun{}, err
	}
	self0 := selfCPU()
	start := time.Now()
	msgs, n, err := c.fetchAll(uidNext, batch, sum)
	dur := time.Since(start)
	self1 := selfCPU()
	serve1, err2 := procCPU(pid)
	if err != nil {
		return fetchRun{}, err
	}
	if err2 != nil {
		return fetchRun{}, err2
	}
	c.logout()
	return fetchRun{target: t, msgs: msgs, bytes: n, crc: sum.Sum32(), dur: dur, tls: c.tls,
		clientCPU: self1 - self0, serveCPU: serve1 - serve0}, nil
}

// fetchResult is the whole throughput measurement.
type fetchResult struct {
	batch          int
	runs           []fetchRun
	proxy, direct  float64 // median MB/s
	ratio          float64
	sameBytes      bool
	sameContent    bool
	msgs           int
	bytes          int64
	expectMsgs     int
	expectBytes    int64
	matchesMaildir bool
	tls            string // TLS version on the direct path
}

// measureFetch alternates full fetches, proxy first on odd rounds and direct first on even ones.
func (b *bench) measureFetch(ctx context.Context, reps, batch int, expectMsgs int, expectBytes int64, progress func(string)) (*fetchResult, error) {
	res := &fetchResult{batch: batch, expectMsgs: expectMsgs, expectBytes: expectBytes}
	var speeds [2][]float64
	for i := range reps {
		order := []target{viaProxy, direct}
		if i%2 == 1 {
			order = []target{direct, viaProxy}
		}
		for _, t := range order {
			r, err := b.fetchOnce(ctx, t, batch)
			if err != nil {
				return nil, fmt.Errorf("fetch %s: %w", t, err)
			}
			progress(fmt.Sprintf("fetch %d/%d %-6s %d messages, %d bytes in %v: %.1f MB/s", i+1, reps, t, r.msgs, r.bytes, r.dur.Round(time.Millisecond), r.mbps()))
			res.runs = append(res.runs, r)
			if r.tls != "" {
				res.tls = r.tls
			}
			speeds[t] = append(speeds[t], r.mbps())
		}
	}
	res.proxy, res.direct = median(speeds[viaProxy]), median(speeds[direct])
	res.ratio = res.proxy / res.direct
	first := res.runs[0]
	res.msgs, res.bytes = first.msgs, first.bytes
	res.sameBytes, res.sameContent = true, true
	for _, r := range res.runs {
		res.sameBytes = res.sameBytes && r.bytes == first.bytes && r.msgs == first.msgs
		res.sameContent = res.sameContent && r.crc == first.crc
	}
	res.matchesMaildir = res.msgs == expectMsgs && res.bytes == expectBytes
	return res, nil
}

// medianProxyTime is the median duration of the proxy fetches.
func (f *fetchResult) medianProxyTime() time.Duration {
	var d []time.Duration
	for _, r := range f.runs {
		if r.target == viaProxy {
			d = append(d, r.dur)
		}
	}
	return quantile(d, 0.5)
}

// loginResult is the login latency measurement.
type loginResult struct {
	iters                 int
	proxy, direct         []time.Duration
	proxyMed, proxyP90    time.Duration
	directMed, directP90  time.Duration
	diffMed, diffP90      time.Duration
	warmup                int
	proxyFirst, directFst time.Duration // the first (cold) login of each
}

// loginOnce times connect + greeting + login (TLS and XOAUTH2 for direct) until the tagged
// OK, then logs out untimed.
func (b *bench) loginOnce(ctx context.Context, t target) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, loginTimeout)
	defer cancel()
	start := time.Now()
	c, err := b.dial(ctx, t, nil)
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	c.logout()
	c.Close()
	return d, nil
}

// measureLogin alternates logins after a few untimed warm-up logins of each kind (the first
// proxy login verifies the app password with argon2id and may fetch the access token).
func (b *bench) measureLogin(ctx context.Context, iters, warmup int, progress func(string)) (*loginResult, error) {
	res := &loginResult{iters: iters, warmup: warmup}
	for i := range warmup {
		for _, t := range []target{viaProxy, direct} {
			d, err := b.loginOnce(ctx, t)
			if err != nil {
				return nil, fmt.Errorf("warm-up login %s: %w", t, err)
			}
			if i == 0 && t == viaProxy {
				res.proxyFirst = d
			} else if i == 0 {
				res.directFst = d
			}
		}
	}
	for i := range iters {
		order := []target{viaProxy, direct}
		if i%2 == 1 {
			order = []target{direct, viaProxy}
		}
		for _, t := range order {
			d, err := b.loginOnce(ctx, t)
			if err != nil {
				return nil, fmt.Errorf("login %d %s: %w", i+1, t, err)
			}
			if t == viaProxy {
				res.proxy = append(res.proxy, d)
			} else {
				res.direct = append(res.direct, d)
			}
		}
		if (i+1)%50 == 0 {
			progress(fmt.Sprintf("logins %d/%d", i+1, iters))
		}
	}
	res.proxyMed, res.proxyP90 = quantile(res.proxy, 0.5), quantile(res.proxy, 0.9)
	res.directMed, res.directP90 = quantile(res.direct, 0.5), quantile(res.direct, 0.9)
	res.diffMed, res.diffP90 = res.proxyMed-res.directMed, res.proxyP90-res.directP90
	return res, nil
}

// idleResult is one level of the idle-session measurement.
type idleResult struct {
	requested   int
	capacity    int // sessions serve's descriptor limit allows
	opened      int
	alive       int // answered NOOP after all were open
	failures    int
	firstErr    string
	openTime    time.Duration
	fdLimit     int
	fdsBefore   int
	fdsAfter    int
	rssStart    int64         // KiB, right after serve started
	rssBefore   int64         // KiB, after the warm-up login
	rtBefore    *runtimeStats // of the fresh process
	rtAfter     *runtimeStats // with the sessions open
	heapTop     string        // go tool pprof -top of the heap with the sessions open (-profile)
	rssAfter    int64         // KiB, with the sessions open
	hwmAfter    int64         // KiB, VmHWM with the sessions open
	dovecotRSS  int64         // KiB, all of Dovecot's imap and imap-login processes
	dovecotProc int           // how many such processes
}

// perSession is the RSS growth per session in KiB, from the fresh process: an upper bound, as it
// includes what the warm-up login left (argon2id takes 64 MiB).
func (r idleResult) perSession() float64 {
	if r.opened == 0 {
		return 0
	}
	return float64(r.rssAfter-r.rssStart) / float64(r.opened)
}

// sourceAddr spreads sessions over loopback source addresses 127.77.x.y, sessionsPerIP each,
// so that the proxy's per-address connection cap is not what the benchmark measures.
func sourceAddr(i int) net.Addr {
	k := i / sessionsPerIP
	return &net.TCPAddr{IP: net.IPv4(127, 77, byte(k/250), byte(k%250+1))}
}

// measureIdle starts a fresh mailkey serve, logs in once (argon2id and the token are then
// cached), reads its RSS, opens up to n logged-in sessions, checks each with NOOP, reads the
// RSS again, and closes everything.
func (b *bench) measureIdle(ctx context.Context, n int, progress func(string)) (*idleResult, error) {
	serve, err := b.startServe(ctx)
	if err != nil {
		return nil, err
	}
	b.serve = serve
	defer func() {
		serve.stop()
		b.serve = nil
	}()
	pid := serve.pid()
	res := &idleResult{requested: n}
	time.Sleep(settleTime)
	if res.rssStart, _, err = procMem(pid); err != nil {
		return nil, err
	}
	if res.rtBefore, err = b.readRuntimeStats(ctx); err != nil {
		return nil, err
	}
	if _, err := b.loginOnce(ctx, viaProxy); err != nil {
		return nil, fmt.Errorf("warm-up login: %w", err)
	}
	time.Sleep(settleTime)
	if res.rssBefore, _, err = procMem(pid); err != nil {
		return nil, err
	}
	if res.fdLimit, err = procNoFile(pid); err != nil {
		return nil, err
	}
	if res.fdsBefore, err = procFDs(pid); err != nil {
		return nil, err
	}
	res.capacity = max(0, (res.fdLimit-res.fdsBefore-fdReserve)/2)
	want := min(n, res.capacity)

	conns := make([]*imapConn, want)
	var (
		next     atomic.Int64
		failures atomic.Int64
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range openWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= want || failures.Load() >= maxOpenFailures || ctx.Err() != nil {
					return
				}
				octx, cancel := context.WithTimeout(ctx, openTimeout)
				c, err := b.dial(octx, viaProxy, sourceAddr(i))
				cancel()
				if err != nil {
					failures.Add(1)
					errOnce.Do(func() { res.firstErr = err.Error() })
					continue
				}
				c.setDeadline(time.Time{})
				conns[i] = c
				if i > 0 && i%1000 == 0 {
					progress(fmt.Sprintf("idle %d: %d sessions started", n, i))
				}
			}
		})
	}
	wg.Wait()
	res.openTime = time.Since(start)
	res.failures = int(failures.Load())
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		b.waitFDs(pid, res.fdsBefore)
	}()
	for _, c := range conns {
		if c != nil {
			res.opened++
		}
	}
	time.Sleep(settleTime)
	if res.rssAfter, res.hwmAfter, err = procMem(pid); err != nil {
		return nil, err
	}
	if res.fdsAfter, err = procFDs(pid); err != nil {
		return nil, err
	}
	if res.rtAfter, err = b.readRuntimeStats(ctx); err != nil {
		return nil, err
	}
	res.dovecotRSS, res.dovecotProc = b.dovecotMem()
	if b.pprofAddr != "" {
		if res.heapTop, err = b.profile(ctx, "heap", fmt.Sprintf("heap-%d", n), "", "inuse_space", httpTimeout); err != nil {
			return nil, err
		}
	}
	res.alive = noopAll(ctx, conns)
	progress(fmt.Sprintf("idle %d: %d open, %d answered NOOP, serve RSS %d → %d KiB", n, res.opened, res.alive, res.rssBefore, res.rssAfter))
	return res, nil
}

// noopAll sends NOOP on every open session and counts the OKs.
func noopAll(ctx context.Context, conns []*imapConn) int {
	var ok atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range openWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(conns) || ctx.Err() != nil {
					return
				}
				c := conns[i]
				if c == nil {
					continue
				}
				c.setDeadline(time.Now().Add(loginTimeout))
				if _, err := c.command("NOOP", nil, false); err == nil {
					ok.Add(1)
				}
				c.setDeadline(time.Time{})
			}
		})
	}
	wg.Wait()
	return int(ok.Load())
}

// waitFDs waits, bounded, until serve holds no more descriptors than before a level.
func (b *bench) waitFDs(pid, want int) {
	deadline := time.Now().Add(drainWait)
	for time.Now().Before(deadline) {
		n, err := procFDs(pid)
		if err != nil || n <= want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}
