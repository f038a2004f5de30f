// Command bench measures what mailkey serve costs compared with a direct connection to the mail
// server, all in one run against the real e2e stack on loopback (package
// github.com/mailkey/mailkey/test/e2e: oidc-provider, Dovecot, Postfix):
//
//  1. full-mailbox fetch throughput, UID FETCH (BODY.PEEK[]) in batches (RFC 9051), through the
//     proxy (plain loopback to the proxy, TLS to Dovecot) against Dovecot's IMAPS directly with
//     SASL XOAUTH2, as a ratio, with the fetched bytes checked to be identical;
//  2. login latency: connect + LOGIN with an app password through the proxy against connect +
//     TLS + AUTHENTICATE XOAUTH2 directly;
//  3. the proxy's resident memory with thousands of idle, logged-in sessions;
//  4. the credential helper: the whole process `mailkey token ACCOUNT` with a fresh stored
//     token, per store protection (-token-modes), against a Go hello-world built in the same
//     run and `python3 -c pass`: wall time, CPU time and peak memory (the child's rusage);
//  5. a password flood: one client's first login into a fresh mailkey serve, alone and right
//     after another client has sent 50 wrong app passwords at once (-only flood).
//
// Usage, as root from the repository root (the stack runs Dovecot and Postfix):
//
//	go run ./bench -n 10000 -write
//	go run ./bench -only token -write   # the credential helper alone, no bulk mailbox
//
// It builds ./cmd/mailkey, starts the stack with carol's bulk mailbox, sets up a mailkey account
// for carol (mailkey add, login --import, password add), runs mailkey serve as a subprocess,
// prints a Markdown report and, with -write, puts it into docs/benchmarks.md between the
// markers there. Every loop is bounded; the program stops the stack and the proxy itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
)

// runTimeout bounds the whole run.
const runTimeout = 45 * time.Minute

// wantNoFile is the descriptor limit the benchmark asks for: 10,000 proxied sessions need
// 20,000 in mailkey serve alone.
const wantNoFile = 70000

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

type flags struct {
	messages int
	batch    int
	reps     int
	logins   int
	warmup   int
	sessions []int
	write    bool
	out      string
	keep     bool
	profile  bool
	only     string // "", "serve", "token" or "flood"
	token    tokenBench
	flood    floodBench
}

func (f *flags) serve() bool       { return f.only == "" || f.only == "serve" }
func (f *flags) tokenHelper() bool { return f.only == "" || f.only == "token" }
func (f *flags) floodPart() bool   { return f.only == "" || f.only == "flood" }

func parseFlags() (*flags, error) {
	f := &flags{}
	flag.IntVar(&f.messages, "n", 10000, "messages in carol's bulk mailbox")
	flag.IntVar(&f.batch, "batch", 500, "UIDs per UID FETCH command")
	flag.IntVar(&f.reps, "reps", 5, "full-mailbox fetches per path")
	flag.IntVar(&f.logins, "logins", 200, "timed logins per path")
	flag.IntVar(&f.warmup, "warmup", 5, "untimed warm-up logins per path")
	sessions := flag.String("sessions", "1000,10000", "comma-separated idle-session counts (empty: skip)")
	flag.BoolVar(&f.write, "write", false, "write the report into -out")
	flag.StringVar(&f.out, "out", "docs/benchmarks.md", "report file for -write, relative to the repository root")
	flag.BoolVar(&f.keep, "keep", false, "keep the stack's directory")
	flag.BoolVar(&f.profile, "profile", false, "use a build of mailkey with a pprof listener and add CPU and heap profiles of mailkey serve")
	flag.StringVar(&f.only, "only", "", "run only one part: serve (sections 1-3), token (the credential helper, no bulk mailbox) or flood (first logins during a password flood)")
	flag.IntVar(&f.flood.rounds, "flood-rounds", 10, "first logins timed with and without the password flood, each")
	flag.IntVar(&f.flood.wrong, "flood-wrong", 50, "wrong passwords the flooding client sends at once")
	flag.IntVar(&f.token.runs, "token-runs", 200, "timed calls per command in the token part")
	flag.IntVar(&f.token.warmup, "token-warmup", 10, "untimed warm-up calls per command in the token part")
	flag.IntVar(&f.token.slowRuns, "slow-runs", 10, "timed calls of each slow token mode (passphrase: scrypt in every call)")
	modes := flag.String("token-modes", "key-file,passphrase,agent", "comma-separated store protections to time mailkey token with")
	flag.Parse()
	if flag.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", flag.Arg(0))
	}
	if f.messages < 1 || f.batch < 1 || f.reps < 1 || f.logins < 1 || f.warmup < 1 {
		return nil, errors.New("-n, -batch, -reps, -logins and -warmup must be positive")
	}
	if f.only != "" && f.only != "serve" && f.only != "token" && f.only != "flood" {
		return nil, fmt.Errorf("-only: %q is not serve, token or flood", f.only)
	}
	if f.flood.rounds < 1 || f.flood.wrong < 1 || f.flood.wrong > sessionsPerIP {
		return nil, fmt.Errorf("-flood-rounds must be positive, -flood-wrong between 1 and %d", sessionsPerIP)
	}
	if f.token.runs < 1 || f.token.warmup < 0 || f.token.slowRuns < 1 {
		return nil, errors.New("-token-runs and -slow-runs must be positive, -token-warmup not negative")
	}
	var err error
	if f.token.modes, err = pickTokenModes(*modes); err != nil {
		return nil, err
	}
	for s := range strings.SplitSeq(*sessions, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-sessions: %q is not a positive number", s)
		}
		f.sessions = append(f.sessions, n)
	}
	return f, nil
}

func run() error {
	f, err := parseFlags()
	if err != nil {
		return err
	}
	if err := e2e.Prerequisites(); err != nil {
		return err
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	progress := func(s string) { fmt.Fprintf(os.Stderr, "bench: [%s] %s\n", time.Now().Format("15:04:05"), s) }

	res := &results{date: time.Now(), command: strings.TrimSpace("go run ./bench " + strings.Join(os.Args[1:], " ")),
		machine: describeMachine(), messages: f.messages}
	res.fdNote = raiseNoFile()

	dir, err := os.MkdirTemp("", "mailkey-bench-")
	if err != nil {
		return err
	}
	// the stack's mail processes run as nobody and must reach the files below
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if f.keep {
		progress("files in " + dir)
	} else {
		defer os.RemoveAll(dir)
	}
	b := &bench{dir: dir, root: root}
	pkg := "./cmd/mailkey"
	if f.profile {
		pkg = "./bench/cmd/mailkey-pprof"
		if b.pprofAddr, err = freeAddr(); err != nil {
			return err
		}
	}
	res.build = pkg
	if b.bin, err = buildMailkey(ctx, root, dir, pkg, "mailkey"); err != nil {
		return err
	}
	opts := []e2e.Option{e2e.WithAccessTokenTTL(2 * time.Hour)}
	if f.serve() {
		if err := b.checkServe(ctx); err != nil {
			return err
		}
		progress(fmt.Sprintf("starting the e2e stack with %d messages", f.messages))
		opts = append(opts, e2e.WithBulkMailbox(f.messages), e2e.WithIMAPClientLimit(1000))
	} else {
		progress("starting the e2e stack")
	}
	b.stack, err = e2e.Run(ctx, filepath.Join(dir, "stack"), opts...)
	if err != nil {
		return err
	}
	defer b.stack.Close()
	if err := b.setupMailkey(ctx); err != nil {
		return err
	}

	var tok *tokenResult
	if f.tokenHelper() {
		if tok, err = b.measureToken(ctx, f.token, progress); err != nil {
			return err
		}
		tok.date, tok.command, tok.machine = res.date, res.command, res.machine
	}
	var flood *floodResult
	if f.floodPart() {
		if flood, err = b.measureFlood(ctx, f.flood, progress); err != nil {
			return err
		}
		flood.date, flood.command, flood.machine = res.date, res.command, res.machine
	}
	if f.serve() {
		if err := b.measureServe(ctx, f, res, progress); err != nil {
			return err
		}
	}

	var report strings.Builder
	if f.serve() {
		res.markdown(&report)
	}
	var tokenReport strings.Builder
	if tok != nil {
		tok.markdown(&tokenReport)
	}
	fmt.Print(report.String())
	if report.Len() > 0 && tokenReport.Len() > 0 {
		fmt.Println()
	}
	fmt.Print(tokenReport.String())
	var floodReport strings.Builder
	if flood != nil {
		flood.markdown(&floodReport)
		fmt.Println()
		fmt.Print(floodReport.String())
	}
	if f.write {
		out := f.out
		if !filepath.IsAbs(out) {
			out = filepath.Join(root, out)
		}
		if f.serve() {
			if err := writeReport(out, reportBegin, reportEnd, []byte(report.String())); err != nil {
				return err
			}
		}
		if tok != nil {
			if err := writeReport(out, tokenBegin, tokenEnd, []byte(tokenReport.String())); err != nil {
				return err
			}
		}
		if flood != nil {
			if err := writeReport(out, floodBegin, floodEnd, []byte(floodReport.String())); err != nil {
				return err
			}
		}
		progress("wrote " + out)
	}
	return nil
}

// measureServe runs sections 1-3: login latency and fetch throughput through mailkey serve,
// then its memory with idle sessions.
func (b *bench) measureServe(ctx context.Context, f *flags, res *results, progress func(string)) error {
	md := filepath.Join(b.stack.Dir, "mail", "example.test", "carol", "Maildir")
	msgs, size, err := maildirSize(md)
	if err != nil {
		return fmt.Errorf("bulk mailbox: %w", err)
	}
	res.mailboxSize = size
	if b.serve, err = b.startServe(ctx); err != nil {
		return err
	}
	progress("mailkey serve runs, pid " + strconv.Itoa(b.serve.pid()))

	if res.login, err = b.measureLogin(ctx, f.logins, f.warmup, progress); err != nil {
		return b.withLogs(err)
	}
	if res.fetch, err = b.measureFetch(ctx, f.reps, f.batch, msgs, size, progress); err != nil {
		return b.withLogs(err)
	}
	if f.profile {
		secs := max(1, int(res.fetch.medianProxyTime().Seconds()))
		progress(fmt.Sprintf("CPU profile of mailkey serve during %d s of an extra proxy fetch", secs))
		if res.cpuTop, err = b.profileFetch(ctx, f.batch, secs); err != nil {
			return b.withLogs(err)
		}
	}
	b.serve.stop()
	b.serve = nil

	for _, n := range f.sessions {
		progress(fmt.Sprintf("idle sessions: %d", n))
		r, err := b.measureIdle(ctx, n, progress)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			res.idleErr = append(res.idleErr, fmt.Sprintf("%d sessions: %v", n, err))
			continue
		}
		res.idle = append(res.idle, r)
	}
	return nil
}

// withLogs adds the end of mailkey serve's log to err.
func (b *bench) withLogs(err error) error {
	if b.serve == nil {
		return err
	}
	return fmt.Errorf("%w\nmailkey serve log:\n%s", err, tail(b.serve.log, 20))
}

// raiseNoFile tries to raise this process's descriptor limit (inherited by the stack and by
// mailkey serve) to wantNoFile and returns a note for the report when the hard limit stays
// lower.
func raiseNoFile() string {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return "getrlimit: " + err.Error()
	}
	if lim.Max >= wantNoFile {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		return ""
	}
	err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: wantNoFile, Max: wantNoFile})
	if err == nil {
		return ""
	}
	hard := lim.Max
	lim.Cur = lim.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	why := err.Error()
	if !hasCapSysResource() {
		why += "; this process lacks CAP_SYS_RESOURCE"
	}
	return fmt.Sprintf("The open-file hard limit (RLIMIT_NOFILE) here is %d and raising it to %d was refused (%s), "+
		"so mailkey serve cannot hold more than about %d sessions: each needs two descriptors (client and upstream).",
		hard, wantNoFile, why, hard/2)
}

// hasCapSysResource reports whether CAP_SYS_RESOURCE (bit 24) is in this process's effective
// capability set, which raising a hard limit needs.
func hasCapSysResource() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<24) != 0
		}
	}
	return false
}
