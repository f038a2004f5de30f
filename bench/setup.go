package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
)

// Setup bounds.
const (
	buildTimeout   = 5 * time.Minute
	commandTimeout = 2 * time.Minute  // one mailkey command
	serveStartWait = 30 * time.Second // mailkey serve's IMAP listener to open
	serveStopGrace = 10 * time.Second
	accountName    = "carol"
)

// bench is everything the measurements use.
type bench struct {
	stack    *e2e.Stack
	dir      string
	root     string   // the module root
	bin      string   // the mailkey binary
	spawn    string   // bench/cmd/spawn, which starts the token part's processes
	env      []string // mailkey's environment
	config   string
	password string // carol's app password (a secret)
	token    string // an access token for carol, for direct logins (a secret)
	imapAddr string // the proxy's IMAP listener
	status   string // the proxy's status listener
	upstream string // Dovecot's IMAPS address
	serve    *serveProc
	// pprofAddr, when set, is where the profiling build of mailkey serve
	// (bench/cmd/mailkey-pprof) serves /debug/pprof/.
	pprofAddr string
}

// moduleRoot returns the directory holding go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := string(bytes.TrimSpace(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("cannot find the module root (go env GOMOD: %v); run from inside the repository", err)
	}
	return filepath.Dir(gomod), nil
}

// buildFlags are make build's: mailkey ships as one static binary. A binary linked with cgo
// starts the dynamic loader and libc first, which doubled the CPU time of mailkey token.
var buildFlags = []string{"build", "-trimpath"}

// buildEnv is the environment for go build.
func buildEnv() []string { return append(os.Environ(), "CGO_ENABLED=0") }

// buildMailkey builds pkg (./cmd/mailkey, its profiling build, or another command of this
// module) into dir/bin/NAME the way make build does.
func buildMailkey(ctx context.Context, root, dir, pkg, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	bin := filepath.Join(dir, "bin", name)
	cmd := exec.CommandContext(ctx, "go", append(buildFlags, "-o", bin, pkg)...)
	cmd.Dir = root
	cmd.Env = buildEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// freeAddr returns 127.0.0.1:PORT with a port that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// setupMailkey writes mailkey's configuration (the proxy's listeners on free loopback ports,
// POP3 and SMTP off), adds the account for carol with Dovecot's IMAPS server, imports a
// refresh token and creates an app password. It also gets a second, independent token for the
// direct logins.
func (b *bench) setupMailkey(ctx context.Context) error {
	mk := filepath.Join(b.dir, "mailkey")
	home := filepath.Join(mk, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	b.config = filepath.Join(mk, "config.toml")
	var err error
	if b.imapAddr, err = freeAddr(); err != nil {
		return err
	}
	if b.status, err = freeAddr(); err != nil {
		return err
	}
	conf := fmt.Sprintf("[proxy]\nimap = %q\npop3 = \"\"\nsmtp = \"\"\nstatus = %q\n", b.imapAddr, b.status)
	if err := os.WriteFile(b.config, []byte(conf), 0o600); err != nil {
		return err
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "HOME" || strings.HasPrefix(k, "MAILKEY_") || strings.HasPrefix(k, "XDG_") {
			continue
		}
		b.env = append(b.env, kv)
	}
	b.env = append(b.env, "HOME="+home, "MAILKEY_CONFIG="+b.config,
		"MAILKEY_STATE_DIR="+filepath.Join(mk, "state"), "MAILKEY_NO_KEYRING=1",
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_STATE_HOME="+filepath.Join(home, ".local", "state"))

	s := b.stack
	b.upstream = e2e.Loopback(s.IMAPSPort)
	if _, err := b.mailkey(ctx, "", "add", accountName, "--provider", "generic", "--issuer", s.Issuer,
		"--client-id", e2e.ClientPublic, "--email", e2e.Carol, "--imap", s.IMAPS, "--ca-file", s.CAFile,
		"--scope", "openid", "--scope", "email", "--scope", e2e.ScopeMail); err != nil {
		return err
	}
	tok, err := s.AuthCodeToken(ctx, e2e.Carol, e2e.CarolPassword)
	if err != nil {
		return fmt.Errorf("token for mailkey: %w", err)
	}
	if _, err := b.mailkey(ctx, tok.RefreshToken+"\n", "login", accountName, "--import"); err != nil {
		return err
	}
	out, err := b.mailkey(ctx, "", "password", "add", accountName, "--label", "bench")
	if err != nil {
		return err
	}
	b.password = strings.TrimSpace(out)
	if b.password == "" || strings.ContainsAny(b.password, " \n") {
		return fmt.Errorf("mailkey password add printed %d bytes that are not one password", len(out))
	}
	direct, err := s.AuthCodeToken(ctx, e2e.Carol, e2e.CarolPassword)
	if err != nil {
		return fmt.Errorf("token for direct logins: %w", err)
	}
	b.token = direct.AccessToken
	return nil
}

// mailkey runs one mailkey command and returns its stdout. The error carries mailkey's
// stderr, which never holds a secret.
func (b *bench) mailkey(ctx context.Context, stdin string, args ...string) (string, error) {
	return b.mailkeyEnv(ctx, b.env, stdin, args...)
}

// mailkeyEnv is mailkey with another environment.
func (b *bench) mailkeyEnv(ctx context.Context, env []string, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("mailkey %s: %v\n%s", args[0], err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// serveProc is a running mailkey serve.
type serveProc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func (p *serveProc) pid() int { return p.cmd.Process.Pid }

func (p *serveProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startServe starts mailkey serve, its output going to a log file, and waits until its IMAP
// listener accepts connections.
func (b *bench) startServe(ctx context.Context) (*serveProc, error) {
	logPath := filepath.Join(b.dir, "log", "serve.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(b.bin, "serve", "--imap", b.imapAddr, "--pop3", "off", "--smtp", "off", "--status", b.status)
	cmd.Env = b.env
	if b.pprofAddr != "" {
		cmd.Env = append(cmd.Env[:len(cmd.Env):len(cmd.Env)], "MAILKEY_BENCH_PPROF="+b.pprofAddr)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mailkey serve: %w", err)
	}
	p := &serveProc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(serveStartWait)
	for {
		c, err := net.DialTimeout("tcp", b.imapAddr, time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		if p.exited() {
			return nil, fmt.Errorf("mailkey serve exited: %v\n%s", p.err, tail(logPath, 20))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, fmt.Errorf("mailkey serve did not open %s within %v\n%s", b.imapAddr, serveStartWait, tail(logPath, 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM, then SIGKILL after a grace period, and waits.
func (p *serveProc) stop() {
	if p == nil || p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(serveStopGrace):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// maildirSize sums the ,W= (RFC 5322 size with CRLF) of every message in a Maildir's cur/.
func maildirSize(md string) (count int, size int64, err error) {
	ents, err := os.ReadDir(filepath.Join(md, "cur"))
	if err != nil {
		return 0, 0, err
	}
	for _, e := range ents {
		i := strings.Index(e.Name(), ",W=")
		if i < 0 {
			return 0, 0, fmt.Errorf("%s has no ,W= size", e.Name())
		}
		v, _, _ := strings.Cut(e.Name()[i+3:], ":")
		v, _, _ = strings.Cut(v, ",")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", e.Name(), err)
		}
		count++
		size += n
	}
	return count, size, nil
}

var errNoServe = errors.New("mailkey serve has no --imap flag yet")

// checkServe makes sure the binary's serve command takes --imap.
func (b *bench) checkServe(ctx context.Context) error {
	out, err := b.mailkey(ctx, "", "serve", "--help")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "--imap") {
		return errNoServe
	}
	return nil
}
