// Command sandbox runs the e2e stack (a local OpenID provider, Dovecot and Postfix on loopback)
// until it gets SIGINT or SIGTERM, for trying mail clients against it by hand.
//
//	go run ./test/e2e/cmd/sandbox [-dir DIR | -keep] [-bulk N] [-at-ttl 60s] [-auto-consent] [-no-oauth]
//
// It says what it is doing at each step on stderr, then prints the issuer, ports, CA file and
// accounts, and writes DIR/env with shell exports (". DIR/env"). It reserves four free ports
// for mailkey serve (IMAP, POP3, SMTP and the status page), writes them into the sandbox's
// mailkey configuration and prints them; they stay reserved for serve until the sandbox
// stops. Its scratch folder goes when it stops, unless -keep is given or -dir names the
// folder. Run it as root.
//
// On a machine without a browser, DIR/env also exports SANDBOX_BROWSER, a command for
// $BROWSER: "BROWSER=$SANDBOX_BROWSER mailkey login sandbox" signs in as alice and consents
// by itself (it runs this program with -browse URL while the sandbox is up).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mailkey/mailkey/internal/cli"
	"github.com/mailkey/mailkey/internal/oauth"
	"github.com/mailkey/mailkey/test/e2e"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "", "directory for the stack's files, kept when the sandbox stops (default: a new one under the temp dir, removed then)")
	keep := flag.Bool("keep", false, "keep the scratch folder when the sandbox stops, for its logs")
	bulk := flag.Int("bulk", 0, "fill carol's INBOX with this many generated messages")
	atTTL := flag.Duration("at-ttl", 60*time.Second, "access token lifetime")
	autoConsent := flag.Bool("auto-consent", false, "skip the provider's consent page")
	noOAuth := flag.Bool("no-oauth", false, "Dovecot offers no OAuth mechanism")
	browse := flag.Bool("browse", false, "act as the browser for the authorization URL given as argument: sign in as alice, consent, deliver the redirect")
	browseLog := flag.String("log", "", "with -browse: also append errors to this file")
	flag.Parse()
	if *browse {
		if flag.NArg() != 1 {
			return errors.New("-browse takes the authorization URL")
		}
		return browseAsAlice(flag.Arg(0), *browseLog)
	}
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", flag.Arg(0))
	}

	started := time.Now()
	progress := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "sandbox: %s\n", fmt.Sprintf(format, args...))
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "mailkey-sandbox-")
		if err != nil {
			return err
		}
		*dir = d
		// A folder of its own making goes when the sandbox stops, unless -keep; one named
		// with -dir stays, for its logs.
		if *keep {
			defer progress("kept %s", d)
		} else {
			defer os.RemoveAll(d)
		}
	}
	opts := []e2e.Option{e2e.WithAccessTokenTTL(*atTTL), e2e.WithBulkMailbox(*bulk),
		e2e.WithProgress(func(step string) { progress("%s", step) })}
	if *autoConsent {
		opts = append(opts, e2e.WithAutoConsent())
	}
	if *noOAuth {
		opts = append(opts, e2e.WithoutOAuth())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := e2e.Run(ctx, *dir, opts...)
	if err != nil {
		return err
	}
	defer s.Close() // before the folder goes

	cfgPath := filepath.Join(s.Dir, "mailkey", "config.toml")
	stateDir := filepath.Join(s.Dir, "mailkey", "state")
	progress("configuring the mailkey account \"sandbox\" in %s", cfgPath)
	if err := addAccount(s, cfgPath, stateDir); err != nil {
		return err
	}
	ports, release, err := e2e.ReservePorts(len(proxyListeners))
	if err != nil {
		return err
	}
	defer release()
	proxy := make(map[string]string, len(ports))
	for i, name := range proxyListeners {
		proxy[name] = e2e.Loopback(ports[i])
	}
	if err := addProxy(cfgPath, proxy); err != nil {
		return err
	}
	envPath := filepath.Join(s.Dir, "env")
	env := exports(s) + fmt.Sprintf("export MAILKEY_CONFIG='%s'\nexport MAILKEY_STATE_DIR='%s'\n", cfgPath, stateDir)
	if bin, err := filepath.Abs("bin"); err == nil {
		if _, err := os.Stat(filepath.Join(bin, "mailkey")); err == nil {
			env += fmt.Sprintf("export PATH='%s':\"$PATH\"\n", bin)
		}
	}
	if exe, err := os.Executable(); err == nil {
		env += fmt.Sprintf("export SANDBOX_BROWSER='%s -browse -log %s'\n", exe, filepath.Join(s.Dir, "log", "browser.log"))
	}
	if err := os.WriteFile(envPath, []byte(env), 0o644); err != nil {
		return err
	}
	progress("ready in %.1fs", time.Since(started).Seconds())
	describe(os.Stdout, s, envPath, proxy)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "sandbox: stopping")
	return s.Close()
}

// browseAsAlice is the $BROWSER helper: mailkey starts it with the authorization URL and
// does not show its output, so errors also go to logPath.
func browseAsAlice(authorizeURL, logPath string) error {
	// The login mailkey runs gives up after oauth.DefaultLoginTimeout: the browser has no
	// reason to give up sooner (delivering the redirect waits for mailkey's token exchange,
	// which a busy machine makes slow).
	ctx, cancel := context.WithTimeout(context.Background(), oauth.DefaultLoginTimeout)
	defer cancel()
	_, err := e2e.BrowseAs(ctx, authorizeURL, e2e.Alice, e2e.AlicePassword)
	if err != nil && logPath != "" {
		if f, ferr := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); ferr == nil {
			fmt.Fprintf(f, "%s sandbox -browse: %v\n", time.Now().Format(time.RFC3339), err)
			f.Close()
		}
	}
	return err
}

// addAccount writes the sandbox's mailkey configuration with mailkey's own
// add command, so the sandbox shows exactly what a user would type.
func addAccount(s *e2e.Stack, cfgPath, stateDir string) error {
	os.Setenv("MAILKEY_CONFIG", cfgPath)
	os.Setenv("MAILKEY_STATE_DIR", stateDir)
	args := []string{"add", "sandbox", "--provider", "generic", "--issuer", s.Issuer,
		"--client-id", e2e.ClientPublic, "--email", e2e.Alice,
		"--scope", "openid", "--scope", "email", "--scope", "mail",
		"--imap", s.IMAP, "--pop3", s.POP3, "--smtp", s.Submission, "--ca-file", s.CAFile}
	if code := cli.Main(args, os.Stdin, os.Stdout, os.Stderr); code != 0 {
		return fmt.Errorf("mailkey add sandbox failed (exit %d)", code)
	}
	return nil
}

// proxyListeners are the [proxy] listeners the sandbox gives mailkey serve, in the order of
// their reserved ports.
var proxyListeners = []string{"imap", "pop3", "smtp", "status"}

// addProxy writes the [proxy] section: the listeners on the ports the sandbox reserved for
// them, so that mailkey serve starts wherever the usual ports are taken.
func addProxy(cfgPath string, addrs map[string]string) error {
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	section := "\n[proxy]\n# Free ports, reserved for mailkey serve while the sandbox runs.\n"
	for _, name := range proxyListeners {
		section += fmt.Sprintf("%s = %q\n", name, addrs[name])
	}
	_, err = f.WriteString(section)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func exports(s *e2e.Stack) string {
	vars := []struct {
		name  string
		value any
	}{
		{"E2E_DIR", s.Dir},
		{"ISSUER", s.Issuer},
		{"IMAP_PORT", s.IMAPPort}, {"IMAPS_PORT", s.IMAPSPort},
		{"POP3_PORT", s.POP3Port}, {"POP3S_PORT", s.POP3SPort},
		{"SUBMISSION_PORT", s.SubmissionPort}, {"SUBMISSIONS_PORT", s.SubmissionsPort},
		{"POSTFIX_SUBMISSION_PORT", s.PostfixSubmissionPort},
		{"CA_FILE", s.CAFile},
	}
	var out string
	for _, v := range vars {
		out += fmt.Sprintf("export %s='%v'\n", v.name, v.value)
	}
	return out
}

func describe(w io.Writer, s *e2e.Stack, envPath string, proxy map[string]string) {
	fmt.Fprintf(w, "issuer       %s\n", s.Issuer)
	fmt.Fprintf(w, "imap         %s   imaps %s\n", s.IMAP, s.IMAPS)
	fmt.Fprintf(w, "pop3         %s   pop3s %s\n", s.POP3, s.POP3S)
	fmt.Fprintf(w, "submission   %s   submissions %s\n", s.Submission, s.Submissions)
	fmt.Fprintf(w, "postfix      %s (SMTP AUTH switched off for %s)\n", s.PostfixSubmission, e2e.SMTPAuthDisabled)
	fmt.Fprintf(w, "CA file      %s\n", s.CAFile)
	fmt.Fprintf(w, "users        %s / %s, %s / %s, %s / %s\n",
		e2e.Alice, e2e.AlicePassword, e2e.Bob, e2e.BobPassword, e2e.Carol, e2e.CarolPassword)
	fmt.Fprintf(w, "clients      %s (public), %s / %s, %s / %s (client_credentials)\n",
		e2e.ClientPublic, e2e.ClientConfidential, e2e.ClientConfidentialSecret, e2e.ClientDaemon, e2e.ClientDaemonSecret)
	fmt.Fprintf(w, "files        %s (shell exports: . %s)\n", s.Dir, envPath)
	fmt.Fprintf(w, "mailkey serve  imap %s   pop3 %s   smtp %s   status http://%s/\n",
		proxy["imap"], proxy["pop3"], proxy["smtp"], proxy["status"])
	fmt.Fprintf(w, `
A mailkey account "sandbox" (alice@example.test) is configured against this stack.
In another terminal:

  . %s                # MAILKEY_CONFIG, MAILKEY_STATE_DIR, PATH
  mailkey login sandbox           # opens the provider's login page: alice@example.test / alice-pass
                                  # no browser here? BROWSER="$SANDBOX_BROWSER" mailkey login sandbox
  mailkey status
  mailkey token sandbox
  mailkey test sandbox            # logs in over IMAP, POP3 and SMTP and explains any failure
  mailkey password add sandbox    # an app password for a password-only client, then:
  mailkey serve                   # IMAP %s, POP3 %s, SMTP %s (STARTTLS)

press Ctrl-C to stop
`, envPath, proxy["imap"], proxy["pop3"], proxy["smtp"])
}
