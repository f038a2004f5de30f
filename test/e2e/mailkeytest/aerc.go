package mailkeytest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/mailkey/mailkey/internal/testwait"
)

// Aerc is aerc running on a terminal that tmux gives it (a server of the test's own), for a
// test to read its screen and type into it.
type Aerc struct {
	e          *Env
	ctx        context.Context
	tmux, sock string
	env        []string
	last       string // the screen, as last seen
}

// StartAerc starts aerc as the user, with extra environment variables (SSL_CERT_FILE for a
// private CA), on a 200x50 terminal. EDITOR is true, so that a message composed with
// Compose goes to the review screen as it is.
func (e *Env) StartAerc(ctx context.Context, extra ...string) *Aerc {
	e.T.Helper()
	aerc := NeedProgram(e.T, "aerc", "aerc")
	a := &Aerc{e: e, ctx: ctx, tmux: NeedProgram(e.T, "tmux", "tmux"), sock: filepath.Join(e.Home, "tmux.sock")}
	// TMPDIR: aerc writes each composed message to a temporary file and leaves it there.
	a.env = append(append(append([]string(nil), e.Vars...), "EDITOR=true", "TERM=xterm-256color", "TMPDIR="+e.Home), extra...)
	// When aerc stops, the terminal stays with its last words on it, for the test's log.
	a.run("new-session", "-d", "-s", "aerc", "-x", "200", "-y", "50",
		fmt.Sprintf(`%s; echo "aerc exited with status $?"; exec cat`, aerc))
	e.T.Cleanup(func() {
		exec.Command(a.tmux, "-S", a.sock, "kill-server").Run()
		e.Leaks.Output("aerc's screen", a.last)
		if e.T.Failed() {
			e.T.Logf("aerc's screen:\n%s", e.Leaks.Redact(a.last))
		}
	})
	return a
}

func (a *Aerc) run(args ...string) string {
	a.e.T.Helper()
	cmd := exec.CommandContext(a.ctx, a.tmux, append([]string{"-S", a.sock}, args...)...)
	cmd.Env, cmd.Dir = a.env, a.e.Home
	out, err := cmd.CombinedOutput()
	if err != nil {
		a.e.T.Fatalf("tmux %s: %v\n%s", args[0], err, out)
	}
	return string(out)
}

// Screen returns what aerc shows now.
func (a *Aerc) Screen() string {
	a.e.T.Helper()
	a.last = a.run("capture-pane", "-p", "-t", "aerc")
	return a.last
}

// WaitScreen waits until aerc shows text; at the test's deadline it fails, and the test's
// log shows the screen.
func (a *Aerc) WaitScreen(what, text string) {
	a.e.T.Helper()
	testwait.WaitFor(a.e.T, what, func() bool { return strings.Contains(a.Screen(), text) })
}

// Command runs one of aerc's commands (":next-tab").
func (a *Aerc) Command(command string) {
	a.e.T.Helper()
	a.run("send-keys", "-t", "aerc", "-l", command)
	a.run("send-keys", "-t", "aerc", "Enter")
}

// Send composes a message to the address with aerc's :compose command and sends it from the
// review screen, with the current account's outgoing server.
func (a *Aerc) Send(to, subject string) {
	a.e.T.Helper()
	a.Command(`:compose -H "To: ` + to + `" -H "Subject: ` + subject + `" hello`)
	a.WaitScreen("the review of the composed message", "Send this email")
	a.run("send-keys", "-t", "aerc", "y")
}
