package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailkey/mailkey/internal/agent"
	"github.com/mailkey/mailkey/test/e2e"
)

// Token-helper bounds and target.
const (
	callTimeout      = 2 * time.Minute // one process; passphrase mode runs scrypt
	targetTokenRatio = 1.5             // key-file median at most this many times the Go hello-world's
	benchPassphrase  = "bench passphrase for the token store"
	linkedLabel      = "mailkey's packages, no work" // the row of bench/cmd/linked
	helloSource      = "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello, world\") }\n"
)

// tokenMode is one way the token store is unlocked for `mailkey token`, chosen by name with
// -token-modes. Each mode gets its own state folder with carol's account logged in and a fresh
// access token stored; every call of the mode runs with env added to mailkey's environment.
type tokenMode struct {
	name string
	what string   // for the report
	env  []string // added to mailkey's environment for every call of this mode
	slow bool     // timed -slow-runs times, apart from the other commands, instead of -token-runs
	// start, when set, runs after the mode's login and before its calls are timed, for a mode
	// whose token comes from a running process; it returns what stops that process.
	start func(ctx context.Context, b *bench, env []string) (stop func(), err error)
}

// tokenModes are the known modes, in report order.
var tokenModes = []tokenMode{
	{name: "key-file", what: "key file in the state folder (`MAILKEY_NO_KEYRING=1`, no passphrase): the default without an OS keyring"},
	{name: "passphrase", what: "passphrase (`MAILKEY_PASSPHRASE` set, `MAILKEY_NO_KEYRING=1`): age's scrypt unwraps the key in every process",
		env: []string{"MAILKEY_PASSPHRASE=" + benchPassphrase}, slow: true},
	{name: "agent", what: "the same passphrase-protected store as the passphrase row, with `mailkey agent` running: `mailkey token` asks the agent over its Unix socket and opens no store",
		env: []string{"MAILKEY_PASSPHRASE=" + benchPassphrase}, start: startAgent},
}

// startAgent runs `mailkey agent` with the mode's environment and waits until its socket
// answers; the agent unwraps the passphrase-protected key once, at its start.
func startAgent(ctx context.Context, b *bench, env []string) (func(), error) {
	var state string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "MAILKEY_STATE_DIR="); ok {
			state = v
		}
	}
	sock, err := agent.SocketPath(state)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(b.bin, "agent")
	cmd.Env = env
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mailkey agent: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-done
	}
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return stop, nil
		}
		select {
		case <-done:
			return nil, fmt.Errorf("mailkey agent exited at start: %s", strings.TrimSpace(errb.String()))
		case <-ctx.Done():
			stop()
			return nil, fmt.Errorf("mailkey agent: no socket at %s: %w", sock, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// pickTokenModes returns the modes named in a comma-separated list, in report order.
func pickTokenModes(list string) ([]tokenMode, error) {
	var names []string
	for s := range strings.SplitSeq(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			names = append(names, s)
		}
	}
	var known []string
	for _, m := range tokenModes {
		known = append(known, m.name)
	}
	for _, n := range names {
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("-token-modes: unknown mode %q (known: %s)", n, strings.Join(known, ", "))
		}
	}
	var out []tokenMode
	for _, m := range tokenModes {
		if slices.Contains(names, m.name) {
			out = append(out, m)
		}
	}
	return out, nil
}

// procRun is one timed process.
type procRun struct {
	wall   time.Duration // fork/exec to exit, measured by spawn
	cpu    time.Duration // user + system, from the child's rusage
	maxRSS int64         // KiB, ru_maxrss of the child
}

// command is one program the token part times.
type command struct {
	label string   // for the report
	argv  []string // program (an absolute path) and arguments
	env   []string // nil: this process's environment
	check func(stdout string) error
	runs  []procRun
}

// runOnce runs c once through spawn (bench/cmd/spawn) and returns the timing and rusage spawn
// reports. The output is checked, never shown: a token is a secret.
func (c *command) runOnce(ctx context.Context, spawn string) (procRun, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	pr, pw, err := os.Pipe()
	if err != nil {
		return procRun{}, err
	}
	defer pr.Close()
	cmd := exec.CommandContext(ctx, spawn, c.argv...)
	cmd.Env = c.env
	cmd.ExtraFiles = []*os.File{pw}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return procRun{}, fmt.Errorf("%s: %w", c.label, err)
	}
	report, rerr := io.ReadAll(io.LimitReader(pr, 1<<10))
	if err := cmd.Wait(); err != nil {
		return procRun{}, fmt.Errorf("%s: spawn: %v\n%s", c.label, err, strings.TrimSpace(errb.String()))
	}
	r, status, err := parseSpawn(string(report))
	if rerr != nil || err != nil {
		return procRun{}, fmt.Errorf("%s: spawn's report %q: %v", c.label, report, errors.Join(rerr, err))
	}
	if status != 0 {
		return procRun{}, fmt.Errorf("%s: exit status %d\n%s", c.label, status, strings.TrimSpace(errb.String()))
	}
	if c.check != nil {
		if err := c.check(out.String()); err != nil {
			return procRun{}, fmt.Errorf("%s: %w", c.label, err)
		}
	}
	return r, nil
}

// parseSpawn reads spawn's line: wall, user and system nanoseconds, ru_maxrss in KiB, exit status.
func parseSpawn(line string) (procRun, int, error) {
	f := strings.Fields(line)
	if len(f) != 5 || !strings.HasSuffix(line, "\n") {
		return procRun{}, 0, errors.New("want five numbers on one line")
	}
	var v [5]int64
	for i, s := range f {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return procRun{}, 0, err
		}
		v[i] = n
	}
	return procRun{wall: time.Duration(v[0]), cpu: time.Duration(v[1] + v[2]), maxRSS: v[3]}, int(v[4]), nil
}

// oneToken checks that stdout is one line holding one token, without showing it.
func oneToken(stdout string) error {
	tok := strings.TrimSuffix(stdout, "\n")
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return fmt.Errorf("printed %d bytes that are not one token", len(stdout))
	}
	return nil
}

// cmdStats summarises a command's timed runs.
type cmdStats struct {
	label, what        string
	n                  int
	wallMed, wallP90   time.Duration
	cpuMed             time.Duration
	rssMed, rssMax     int64 // KiB
	ratioMed, ratioP90 float64
	cpuRatio           float64 // CPU median to the hello-world's: less moved by other work on the machine
	rssRatio           float64
}

func summarize(c *command, what string) cmdStats {
	var wall, cpu []time.Duration
	var rss []float64
	var rssMax int64
	for _, r := range c.runs {
		wall, cpu, rss = append(wall, r.wall), append(cpu, r.cpu), append(rss, float64(r.maxRSS))
		rssMax = max(rssMax, r.maxRSS)
	}
	return cmdStats{label: c.label, what: what, n: len(c.runs), wallMed: quantile(wall, 0.5), wallP90: quantile(wall, 0.9),
		cpuMed: quantile(cpu, 0.5), rssMed: int64(median(rss)), rssMax: rssMax}
}

// tokenResult is the token-helper measurement.
type tokenResult struct {
	date       time.Time
	command    string
	machine    machine
	runs       int
	warmup     int
	slowRuns   int
	stats      []cmdStats // baselines first, then mailkey version, then one per mode
	endpoint   int        // token-endpoint requests the provider served during the timed calls
	pythonNote string     // why python3 is missing, if it is
	binSize    int64
}

// tokenBench holds what the token part needs beyond bench.
type tokenBench struct {
	runs, warmup, slowRuns int
	modes                  []tokenMode
}

// measureToken times the whole process `mailkey token carol` in each mode, with a fresh access
// token in the store, against a Go hello-world built now, `python3 -c pass` and `mailkey
// version`. Fast commands run round-robin, the starting command rotating each round; slow modes
// run on their own afterwards. The provider's token endpoint must stay untouched throughout.
func (b *bench) measureToken(ctx context.Context, tb tokenBench, progress func(string)) (*tokenResult, error) {
	res := &tokenResult{runs: tb.runs, warmup: tb.warmup, slowRuns: tb.slowRuns}
	if fi, err := os.Stat(b.bin); err == nil {
		res.binSize = fi.Size()
	}
	hello, err := buildHello(ctx, b.dir)
	if err != nil {
		return nil, err
	}
	if b.spawn, err = buildMailkey(ctx, b.root, b.dir, "./bench/cmd/spawn", "spawn"); err != nil {
		return nil, err
	}
	linkedBin, err := buildMailkey(ctx, b.root, b.dir, "./bench/cmd/linked", "linked")
	if err != nil {
		return nil, err
	}
	floor := &command{label: "/bin/true", argv: []string{"/bin/true"}}
	helloCmd := &command{label: "Go hello-world", argv: []string{hello}}
	linked := &command{label: linkedLabel, argv: []string{linkedBin}}
	fast := []*command{floor, helloCmd, linked}
	whats := map[*command]string{
		floor:    "the floor of the measurement: spawn's fork, exec and wait, and spawn's own peak RSS, which a child's ru_maxrss cannot go below",
		helloCmd: "`fmt.Println(\"hello, world\")`, built by this run with the same Go",
		linked: "`bench/cmd/linked`: every package mailkey links, built as mailkey is and as large, with a main that returns at once: " +
			"the runtime's start and the packages' initialisation, the floor of any mailkey command",
	}
	if py, err := python(ctx); err == nil {
		c := &command{label: "python3 -c pass", argv: []string{py, "-c", "pass"}}
		fast = append(fast, c)
		whats[c] = "the interpreter's start-up alone (`" + py + "`, the python3 on PATH)"
	} else {
		res.pythonNote = "python3 is not among the baselines: " + err.Error()
	}
	version := &command{label: "mailkey version", argv: []string{b.bin, "version"}, env: b.env}
	fast = append(fast, version)
	whats[version] = "mailkey's start-up and command-line parsing, no configuration or store"

	var slow []*command
	modeCmd := map[string]*command{}
	for _, m := range tb.modes {
		progress("token helper: preparing mode " + m.name)
		env, stop, err := b.prepareTokenMode(ctx, m)
		if err != nil {
			return nil, fmt.Errorf("token mode %s: %w", m.name, err)
		}
		if stop != nil {
			defer stop()
		}
		c := &command{label: "mailkey token (" + m.name + ")", argv: []string{b.bin, "token", accountName}, env: env, check: oneToken}
		whats[c] = m.what
		modeCmd[m.name] = c
		if m.slow {
			slow = append(slow, c)
		} else {
			fast = append(fast, c)
		}
	}

	if _, err := b.stack.TokenStats(true); err != nil {
		return nil, err
	}
	for i := range tb.warmup + tb.runs {
		for k := range fast {
			c := fast[(i+k)%len(fast)]
			r, err := c.runOnce(ctx, b.spawn)
			if err != nil {
				return nil, err
			}
			if i >= tb.warmup {
				c.runs = append(c.runs, r)
			}
		}
		if n := i + 1 - tb.warmup; n > 0 && n%50 == 0 {
			progress(fmt.Sprintf("token helper: %d/%d rounds", n, tb.runs))
		}
	}
	for _, c := range slow {
		for i := range 1 + tb.slowRuns { // one untimed warm-up call
			r, err := c.runOnce(ctx, b.spawn)
			if err != nil {
				return nil, err
			}
			if i > 0 {
				c.runs = append(c.runs, r)
			}
		}
		progress(fmt.Sprintf("token helper: %s, %d calls", c.label, tb.slowRuns))
	}
	stats, err := b.stack.TokenStats(false)
	if err != nil {
		return nil, err
	}
	for _, n := range stats {
		res.endpoint += n
	}

	hs := summarize(helloCmd, whats[helloCmd])
	ordered := fast
	for _, m := range tb.modes {
		if c := modeCmd[m.name]; m.slow {
			ordered = append(ordered, c)
		}
	}
	for _, c := range ordered {
		s := summarize(c, whats[c])
		if hs.wallMed > 0 && hs.rssMed > 0 {
			s.ratioMed = float64(s.wallMed) / float64(hs.wallMed)
			s.ratioP90 = float64(s.wallP90) / float64(hs.wallP90)
			s.rssRatio = float64(s.rssMed) / float64(hs.rssMed)
			if hs.cpuMed > 0 {
				s.cpuRatio = float64(s.cpuMed) / float64(hs.cpuMed)
			}
		}
		res.stats = append(res.stats, s)
	}
	return res, nil
}

// prepareTokenMode gives a mode its own state folder, imports a refresh token for carol there
// (which stores a fresh access token) and checks that `mailkey token` answers. It returns the
// mode's environment and what stops the mode's process, if it has one.
func (b *bench) prepareTokenMode(ctx context.Context, m tokenMode) (env []string, stop func(), err error) {
	state := filepath.Join(b.dir, "mailkey", "state-"+m.name)
	for _, kv := range b.env {
		if !strings.HasPrefix(kv, "MAILKEY_STATE_DIR=") {
			env = append(env, kv)
		}
	}
	env = append(append(env, "MAILKEY_STATE_DIR="+state), m.env...)
	tok, err := b.stack.AuthCodeToken(ctx, e2e.Carol, e2e.CarolPassword)
	if err != nil {
		return nil, nil, fmt.Errorf("token for mailkey: %w", err)
	}
	if _, err := b.mailkeyEnv(ctx, env, tok.RefreshToken+"\n", "login", accountName, "--import"); err != nil {
		return nil, nil, err
	}
	if m.start != nil {
		if stop, err = m.start(ctx, b, env); err != nil {
			return nil, nil, err
		}
	}
	out, err := b.mailkeyEnv(ctx, env, "", "token", accountName)
	if err == nil {
		err = oneToken(out)
	}
	if err != nil {
		if stop != nil {
			stop()
		}
		return nil, nil, err
	}
	return env, stop, nil
}

// buildHello builds a Go hello-world into dir/bin/hello with the Go and flags that build mailkey.
func buildHello(ctx context.Context, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	src := filepath.Join(dir, "hello")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module hello\n\ngo 1.26\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(helloSource), 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "bin", "hello")
	cmd := exec.CommandContext(ctx, "go", append(buildFlags, "-o", bin, ".")...)
	cmd.Dir = src
	cmd.Env = append(buildEnv(), "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build hello-world: %v\n%s", err, out)
	}
	return bin, nil
}

// python returns the interpreter that python3 on PATH runs, resolved by itself, so that a
// wrapper script in front of it (pyenv's shims) is not what is timed.
func python(ctx context.Context) (string, error) {
	if _, err := exec.LookPath("python3"); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "python3", "-c", "import sys; print(sys.executable)").Output()
	py := strings.TrimSpace(string(out))
	if err != nil || !filepath.IsAbs(py) {
		return "", fmt.Errorf("python3 does not name its executable (%v)", err)
	}
	return py, nil
}
