package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Targets the report checks.
const (
	targetFetchRatio = 0.90                   // proxy throughput at least this share of direct
	targetLoginExtra = 2 * time.Millisecond   // proxy login at most this much slower (median)
	targetIdleRSS    = 300 << 10              // KiB of serve RSS for targetIdleCount sessions
	targetIdleCount  = 10000                  // sessions the RSS target is about
	reportBegin      = "<!-- bench:begin -->" // generated text goes between these markers
	reportEnd        = "<!-- bench:end -->"
	tokenBegin       = "<!-- bench:token:begin -->" // the token part's generated text
	tokenEnd         = "<!-- bench:token:end -->"
)

// results is one run of the benchmark.
type results struct {
	date        time.Time
	command     string
	machine     machine
	messages    int
	mailboxSize int64
	fdNote      string
	fetch       *fetchResult
	login       *loginResult
	idle        []*idleResult
	idleErr     []string
	missed      []string
	build       string // the package mailkey was built from
	cpuTop      string // go tool pprof -top of serve during a proxy fetch (-profile)
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}

// check records a missed target.
func (r *results) check(ok bool, what string) string {
	if !ok {
		r.missed = append(r.missed, what)
	}
	return verdict(ok)
}

// markdown renders the report.
func (r *results) markdown(w io.Writer) {
	r.missed = nil
	m := r.machine
	fmt.Fprintf(w, "## Results of %s\n\n", r.date.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "Command (as root, from the repository root): `%s`\n\n", r.command)
	fmt.Fprintf(w, "| | |\n|---|---|\n")
	fmt.Fprintf(w, "| machine | %d CPUs (%s), %s memory, %s |\n", m.cpus, orDash(m.cpu), orDash(m.memory), orDash(m.kernel))
	fmt.Fprintf(w, "| Go | %s |\n", m.goVer)
	fmt.Fprintf(w, "| Dovecot | %s |\n", orDash(m.dovecot))
	fmt.Fprintf(w, "| mailbox | %d messages, %.1f MB (%d bytes), carol's INBOX from `e2e.WithBulkMailbox` |\n",
		r.messages, float64(r.mailboxSize)/1e6, r.mailboxSize)
	tlsVer := "TLS"
	if r.fetch != nil && r.fetch.tls != "" {
		tlsVer = r.fetch.tls
	}
	fmt.Fprintf(w, "| paths | proxy: client → `mailkey serve` (plain IMAP on 127.0.0.1) → Dovecot IMAPS, certificate verified; "+
		"direct: client → Dovecot IMAPS (%s) |\n\n", tlsVer)

	if f := r.fetch; f != nil {
		fmt.Fprintf(w, "### 1. Full-mailbox fetch\n\n")
		fmt.Fprintf(w, "`UID FETCH lo:hi (BODY.PEEK[])` in batches of %d UIDs, one command at a time, every "+
			"literal read into memory by the same raw-protocol Go client; login and `EXAMINE INBOX` are not timed. "+
			"Rounds alternate which path goes first. MB = 10^6 bytes.\n\n", f.batch)
		fmt.Fprintf(w, "| round | path | messages | bytes | time | MB/s | client CPU s/GB | serve CPU s/GB |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
		for i, run := range f.runs {
			serveCPU := "–"
			if run.target == viaProxy {
				serveCPU = fmt.Sprintf("%.2f", run.cpuPerGB(run.serveCPU))
			}
			fmt.Fprintf(w, "| %d | %s | %d | %d | %.3f s | %.1f | %.2f | %s |\n", i/2+1, run.target, run.msgs, run.bytes,
				run.dur.Seconds(), run.mbps(), run.cpuPerGB(run.clientCPU), serveCPU)
		}
		fmt.Fprintf(w, "\n| | proxy | direct | ratio | target ≥ %.2f× |\n|---|---:|---:|---:|---|\n", targetFetchRatio)
		fmt.Fprintf(w, "| median MB/s | %.1f | %.1f | **%.2f×** | %s |\n\n", f.proxy, f.direct, f.ratio,
			r.check(f.ratio >= targetFetchRatio, "fetch throughput ratio"))
		fmt.Fprintf(w, "CPU columns: CPU seconds (user + system) per 10^9 bytes, of the benchmark client (getrusage) and of "+
			"the mailkey serve process (/proc/PID/stat, 10 ms ticks). On the direct path the client decrypts TLS itself; "+
			"through the proxy, mailkey serve decrypts and the client reads plain loopback.\n\n")
		same := "identical in every run"
		if !f.sameBytes {
			same = "**different between runs**"
			r.missed = append(r.missed, "fetched byte counts differ")
		}
		content := "identical"
		if !f.sameContent {
			content = "**different**"
			r.missed = append(r.missed, "fetched content differs")
		}
		maildir := "equal to"
		if !f.matchesMaildir {
			maildir = "**not equal to**"
			r.missed = append(r.missed, "fetched bytes differ from the Maildir")
		}
		fmt.Fprintf(w, "Every run fetched %d messages, %d bytes: %s, %s the %d messages / %d bytes in the Maildir; "+
			"CRC-32C of all bodies in order %s.\n\n", f.msgs, f.bytes, same, maildir, f.expectMsgs, f.expectBytes, content)
	}

	if l := r.login; l != nil {
		fmt.Fprintf(w, "### 2. Login latency\n\n")
		fmt.Fprintf(w, "%d logins of each kind, alternating, after %d untimed warm-up logins each. Timed from "+
			"before the TCP connect to the tagged OK; LOGOUT is not timed. Proxy: connect to `mailkey serve` + "+
			"`LOGIN carol APP-PASSWORD` (the app password's argon2id result and the access token are cached after the "+
			"warm-up, so every timed login includes the proxy's own upstream connect + TLS + XOAUTH2). Direct: connect "+
			"+ TLS handshake + `AUTHENTICATE XOAUTH2` to Dovecot. Dovecot introspects the token at the provider on "+
			"every login (its auth cache is off), on both paths.\n\n", l.iters, l.warmup)
		fmt.Fprintf(w, "| | median | p90 |\n|---|---:|---:|\n")
		fmt.Fprintf(w, "| proxy | %s | %s |\n", ms(l.proxyMed), ms(l.proxyP90))
		fmt.Fprintf(w, "| direct | %s | %s |\n", ms(l.directMed), ms(l.directP90))
		fmt.Fprintf(w, "| proxy − direct | **%s** | %s |\n\n", ms(l.diffMed), ms(l.diffP90))
		fmt.Fprintf(w, "Target: proxy median ≤ direct median + %v: %s. The first, cold proxy login "+
			"(argon2id verification of the app password, access token read from the store) took %s; the first direct "+
			"one %s.\n\n", targetLoginExtra, r.check(l.diffMed <= targetLoginExtra, "login latency"), ms(l.proxyFirst), ms(l.directFst))
	}

	if len(r.idle) > 0 || len(r.idleErr) > 0 {
		fmt.Fprintf(w, "### 3. Idle sessions\n\n")
		fmt.Fprintf(w, "For each level a fresh `mailkey serve` is started and logged into once (argon2id and token "+
			"cached); then N sessions log in through it (LOGIN, nothing else; %d client source addresses "+
			"127.77.x.y carry %d sessions each, below the proxy's per-address cap) and stay idle. Each session "+
			"answered a NOOP after all were open. RSS is VmRSS of the serve process from /proc/PID/status: fresh (%v after "+
			"start), before (%v after the warm-up login, whose argon2id run takes 64 MiB that Go may not have returned yet) and "+
			"with sessions (%v after the last login). Growth and KiB/session count from the fresh process, so they "+
			"include whatever the warm-up login left. Dovecot runs `service imap { service_count = 0, client_limit = 1000, process_limit = 100 }` "+
			"(`e2e.WithIMAPClientLimit`).\n\n", (targetIdleCount+sessionsPerIP-1)/sessionsPerIP, sessionsPerIP,
			settleTime, settleTime, settleTime)
		fmt.Fprintf(w, "| sessions requested | opened | answered NOOP | serve RSS fresh | before | with sessions | growth | KiB/session | serve fds (limit) | Dovecot imap + imap-login RSS |\n")
		fmt.Fprintf(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, i := range r.idle {
			fmt.Fprintf(w, "| %d | %d | %d | %s | %s | %s | %s | %.1f | %d (%d) | %s in %d processes |\n",
				i.requested, i.opened, i.alive, mib(i.rssStart), mib(i.rssBefore), mib(i.rssAfter), mib(i.rssAfter-i.rssStart),
				i.perSession(), i.fdsAfter, i.fdLimit, mib(i.dovecotRSS), i.dovecotProc)
		}
		fmt.Fprintln(w)
		for _, i := range r.idle {
			if i.opened < i.requested {
				fmt.Fprintf(w, "- %d sessions requested, %d opened", i.requested, i.opened)
				if i.capacity < i.requested {
					fmt.Fprintf(w, ": the serve process may hold %d descriptors (RLIMIT_NOFILE) and had %d open "+
						"before; each session needs two (client and upstream), so at most %d fit", i.fdLimit, i.fdsBefore, i.capacity)
				}
				if i.failures > 0 {
					fmt.Fprintf(w, "; %d opens failed, the first with: %s", i.failures, i.firstErr)
				}
				fmt.Fprintln(w, ".")
			}
		}
		for _, e := range r.idleErr {
			fmt.Fprintf(w, "- %s\n", e)
		}
		if r.fdNote != "" {
			fmt.Fprintf(w, "- %s\n", r.fdNote)
		}
		fmt.Fprintf(w, "\nGo runtime of mailkey serve with the sessions open, from its `/metrics` page (heap allocated "+
			"counts live objects and garbage not yet collected; per session: the growth from the fresh process divided by "+
			"the sessions opened):\n\n")
		fmt.Fprintf(w, "| sessions | goroutines | heap allocated | heap in use | goroutine stacks | next GC at | per session: goroutines, heap alloc, stacks |\n")
		fmt.Fprintf(w, "|---:|---:|---:|---:|---:|---:|---|\n")
		for _, i := range r.idle {
			a, bf := i.rtAfter, i.rtBefore
			if a == nil || bf == nil || i.opened == 0 {
				continue
			}
			n := float64(i.opened)
			fmt.Fprintf(w, "| %d | %.0f | %s | %s | %s | %s | %.2f, %.1f KiB, %.1f KiB |\n", i.opened, a.goroutines,
				mibBytes(a.heapAlloc), mibBytes(a.heapInuse), mibBytes(a.stackInuse), mibBytes(a.nextGC),
				(a.goroutines-bf.goroutines)/n, (a.heapAlloc-bf.heapAlloc)/1024/n, (a.stackInuse-bf.stackInuse)/1024/n)
		}
		if t := r.idleAt(targetIdleCount); t != nil {
			rss := t.rssAfter
			how := fmt.Sprintf("measured with %d sessions", t.opened)
			if t.opened < targetIdleCount {
				rss = t.rssStart + int64(t.perSession()*targetIdleCount)
				how = fmt.Sprintf("extrapolated from %d sessions at %.1f KiB each", t.opened, t.perSession())
			}
			fmt.Fprintf(w, "\nTarget: %d sessions under %s of serve RSS: %s (%s, %s).\n\n", targetIdleCount, mib(targetIdleRSS),
				r.check(rss < targetIdleRSS && t.alive == t.opened, "idle-session memory"), mib(rss), how)
		}
	}
	if r.cpuTop != "" || r.hasHeapProfiles() {
		fmt.Fprintf(w, "### Profiles of mailkey serve\n\n")
		fmt.Fprintf(w, "Taken from `%s` (mailkey plus a net/http/pprof listener on loopback) with `-profile`; the "+
			"whole run above used that build.\n\n", r.build)
		if r.cpuTop != "" {
			fmt.Fprintf(w, "CPU, during an extra (untimed) full-mailbox fetch through the proxy:\n\n```\n%s\n```\n\n", r.cpuTop)
		}
		for _, i := range r.idle {
			if i.heapTop != "" {
				fmt.Fprintf(w, "Heap in use with %d idle sessions:\n\n```\n%s\n```\n\n", i.opened, i.heapTop)
			}
		}
	}
	if len(r.missed) == 0 {
		fmt.Fprintf(w, "All targets met.\n")
	} else {
		fmt.Fprintf(w, "Missed: %s.\n", strings.Join(r.missed, ", "))
	}
}

func (r *results) hasHeapProfiles() bool {
	for _, i := range r.idle {
		if i.heapTop != "" {
			return true
		}
	}
	return false
}

func mibBytes(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

// idleAt returns the idle level with n sessions requested.
func (r *results) idleAt(n int) *idleResult {
	for _, i := range r.idle {
		if i.requested == n {
			return i
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// docHeader starts docs/benchmarks.md when it does not exist yet.
const docHeader = `# Benchmarks

What ` + "`mailkey serve`" + ` costs compared with a direct connection to the mail server, measured
in one run against the real e2e stack on loopback (oidc-provider, Dovecot, Postfix).

` + "```sh\ngo run ./bench -n 10000 -write   # as root: the stack runs Dovecot and Postfix\n```" + `

The section between the markers below is written by the program; the rest of the file is not
touched by ` + "`-write`" + `.

`

// writeReport replaces the generated section of path between the markers begin and end with
// body, keeping everything else; a file without the markers gets them appended, a missing
// file gets docHeader first.
func writeReport(path, begin, end string, body []byte) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if old == nil {
		old = []byte(docHeader)
	}
	section := append(append([]byte(begin+"\n"), body...), []byte(end+"\n")...)
	var out []byte
	i, j := bytes.Index(old, []byte(begin)), bytes.Index(old, []byte(end))
	if i >= 0 && j > i {
		rest := old[j+len(end):]
		rest = bytes.TrimPrefix(rest, []byte("\n"))
		out = append(append(append([]byte(nil), old[:i]...), section...), rest...)
	} else {
		out = append(append(bytes.TrimRight(old, "\n"), "\n\n"...), section...)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// markdown renders the token part's report.
func (t *tokenResult) markdown(w io.Writer) {
	m := t.machine
	fmt.Fprintf(w, "### Token helper: results of %s\n\n", t.date.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "Command (as root, from the repository root): `%s`\n\n", t.command)
	fmt.Fprintf(w, "%d CPUs (%s), %s memory, %s; %s; mailkey and the hello-world built as `make build` does "+
		"(`CGO_ENABLED=0 go build -trimpath`), mailkey %.1f MB.\n\n", m.cpus, orDash(m.cpu), orDash(m.memory),
		orDash(m.kernel), m.goVer, float64(t.binSize)/1e6)
	fmt.Fprintf(w, "Each row is a whole process, started by `bench/cmd/spawn` (a small Go program that forks, execs and waits "+
		"with the syscall package), timed from before the fork to the end of wait4; CPU (user + system) and peak memory "+
		"(ru_maxrss) come from the child's rusage. The fast commands ran %d rounds "+
		"round-robin, the first command rotating each round, after %d untimed rounds; slow modes ran %d calls each on their "+
		"own after one untimed call. Ratios are to the Go hello-world of the same run.\n\n", t.runs, t.warmup, t.slowRuns)
	fmt.Fprintf(w, "| command | calls | median | p90 | × hello (median, p90) | CPU median | × hello CPU | peak RSS median (max) | × hello RSS |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range t.stats {
		fmt.Fprintf(w, "| %s | %d | %s | %s | %.2f×, %.2f× | %s | %.2f× | %s (%s) | %.2f× |\n", s.label, s.n, ms(s.wallMed), ms(s.wallP90),
			s.ratioMed, s.ratioP90, ms(s.cpuMed), s.cpuRatio, mib(s.rssMed), mib(s.rssMax), s.rssRatio)
	}
	fmt.Fprintln(w)
	for _, s := range t.stats {
		fmt.Fprintf(w, "- %s: %s.\n", s.label, s.what)
	}
	if t.pythonNote != "" {
		fmt.Fprintf(w, "- %s\n", t.pythonNote)
	}
	fmt.Fprintf(w, "\nEvery mailkey token call printed one token and exited 0; the provider's token endpoint served %d "+
		"requests while the calls were timed (a fresh stored token needs no network).\n\n", t.endpoint)
	var missed []string
	if t.endpoint != 0 {
		missed = append(missed, "token calls reached the provider")
	}
	var linked *cmdStats
	for i := range t.stats {
		if t.stats[i].label == linkedLabel {
			linked = &t.stats[i]
		}
	}
	for _, s := range t.stats {
		if s.label == "mailkey token (key-file)" {
			fmt.Fprintf(w, "Target: key-file median ≤ %.1f× the Go hello-world's: %s (%.2f×).", targetTokenRatio,
				verdict(s.ratioMed <= targetTokenRatio), s.ratioMed)
			if linked != nil && linked.wallMed > 0 && linked.cpuMed > 0 {
				fmt.Fprintf(w, " The floor of any mailkey command, the row %q, is %.2f× the hello-world (CPU %.2f×); "+
					"mailkey token's own work adds %s of median and %s of CPU to it (%.2f×, CPU %.2f× the floor).",
					linkedLabel, linked.ratioMed, linked.cpuRatio, ms(s.wallMed-linked.wallMed), ms(s.cpuMed-linked.cpuMed),
					float64(s.wallMed)/float64(linked.wallMed), float64(s.cpuMed)/float64(linked.cpuMed))
			}
			fmt.Fprintf(w, "\n\n")
			if s.ratioMed > targetTokenRatio {
				missed = append(missed, "key-file token latency")
			}
		}
	}
	if len(missed) == 0 {
		fmt.Fprintf(w, "All targets met.\n")
	} else {
		fmt.Fprintf(w, "Missed: %s.\n", strings.Join(missed, ", "))
	}
}
