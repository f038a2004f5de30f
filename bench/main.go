// Command bench measures what mailkey serve costs compared with a direct connection to the mail
// server, all in one run against the real e2e stack on loopback (package
// github.com/mailkey/mailkey/test/e2e: oidc-provider, Dovecot, Postfix):
//
//  1. full-mailbox fetch throughput, UID FETCH (BODY.PEEK[]) in batches (RFC 9051), through the
//     proxy (plain loopback to the proxy, TLS to Dovecot) against Dovecot's IMAPS directly with
//     SASL XOAUTH2, as a ratio, with the fetched bytes checked to be identical;
//  2. login latency: connect + LOGIN with an app password through the proxy against connect +
//     TLS + AUTHENTICATE XOAUTH2 directly;
//  3. the proxy's resident memory with thousands of idle, logged-in sessions.
//
// Usage, as root from the repository root (the stack runs Dovecot and Postfix):
//
//	go run ./bench -n 10000 -write
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
}

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
	flag.Parse()
	if flag.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", flag.Arg(0))
	}
	if f.messages < 1 || f.batch < 1 || f.reps < 1 || f.logins < 1 || f.warmup < 1 {
		return nil, errors.New("-n, -batch, -reps, -logins and -warmup must be positive")
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
	b := &bench{dir: dir}
	pkg := "./cmd/mailkey"
	if f.profile {
		pkg = "./bench/cmd/mailkey-pprof"
		if b.pprofAddr, err = freeAddr(); err != nil {
			return err
		}
	}
	res.build = pkg
	if b.bin, err = buildMailkey(ctx, root, dir, pkg); err != nil {
		return err
	}
	if err := b.checkServe(ctx); err != nil {
		return err
	}
	progress(fmt.Sprintf("starting the e2e stack with %d messages", f.messages))
	b.stack, err = e2e.Run(ctx, filepath.Join(dir, "stack"), e2e.WithBulkMailbox(f.messages),
		e2e.WithAccessTokenTTL(2*time.Hour), e2e.WithIMAPClientLimit(1000))
	if err != nil {
		return err
	}
	defer b.stack.Close()
	md := filepath.Join(b.stack.Dir, "mail", "example.test", "carol", "Maildir")
	msgs, size, err := maildirSize(md)
	if err != nil {
		return fmt.Errorf("bulk mailbox: %w", err)
	}
	res.mailboxSize = size

	if err := b.setupMailkey(ctx); err != nil {
		return err
	}
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

	var report strings.Builder
	res.markdown(&report)
	fmt.Print(report.String())
	if f.write {
		out := f.out
		if !filepath.IsAbs(out) {
			out = filepath.Join(root, out)
		}
		if err := writeReport(out, []byte(report.String())); err != nil {
			return err
		}
		progress("wrote " + out)
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
