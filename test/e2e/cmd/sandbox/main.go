// Command sandbox runs the e2e stack (a local OpenID provider, Dovecot and Postfix on loopback)
// until it gets SIGINT or SIGTERM, for trying mail clients against it by hand.
//
//	go run ./test/e2e/cmd/sandbox [-dir DIR] [-bulk N] [-at-ttl 60s] [-auto-consent] [-no-oauth]
//
// It prints the issuer, ports, CA file and accounts, and writes DIR/env with shell exports
// (". DIR/env"). Run it as root.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "", "directory for the stack's files (default: a new one under the temp dir)")
	bulk := flag.Int("bulk", 0, "fill carol's INBOX with this many generated messages")
	atTTL := flag.Duration("at-ttl", 60*time.Second, "access token lifetime")
	autoConsent := flag.Bool("auto-consent", false, "skip the provider's consent page")
	noOAuth := flag.Bool("no-oauth", false, "Dovecot offers no OAuth mechanism")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", flag.Arg(0))
	}

	if *dir == "" {
		d, err := os.MkdirTemp("", "mailkey-sandbox-")
		if err != nil {
			return err
		}
		*dir = d
	}
	opts := []e2e.Option{e2e.WithAccessTokenTTL(*atTTL), e2e.WithBulkMailbox(*bulk)}
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
	defer s.Close()

	envPath := filepath.Join(s.Dir, "env")
	if err := os.WriteFile(envPath, []byte(exports(s)), 0o644); err != nil {
		return err
	}
	describe(os.Stdout, s, envPath)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "sandbox: stopping")
	return s.Close()
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
		{"CA_FILE", s.CAFile},
	}
	var out string
	for _, v := range vars {
		out += fmt.Sprintf("export %s='%v'\n", v.name, v.value)
	}
	return out
}

func describe(w io.Writer, s *e2e.Stack, envPath string) {
	fmt.Fprintf(w, "issuer       %s\n", s.Issuer)
	fmt.Fprintf(w, "imap         %s   imaps %s\n", s.IMAP, s.IMAPS)
	fmt.Fprintf(w, "pop3         %s   pop3s %s\n", s.POP3, s.POP3S)
	fmt.Fprintf(w, "submission   %s   submissions %s\n", s.Submission, s.Submissions)
	fmt.Fprintf(w, "CA file      %s\n", s.CAFile)
	fmt.Fprintf(w, "users        %s / %s, %s / %s, %s / %s\n",
		e2e.Alice, e2e.AlicePassword, e2e.Bob, e2e.BobPassword, e2e.Carol, e2e.CarolPassword)
	fmt.Fprintf(w, "clients      %s (public), %s / %s, %s / %s (client_credentials)\n",
		e2e.ClientPublic, e2e.ClientConfidential, e2e.ClientConfidentialSecret, e2e.ClientDaemon, e2e.ClientDaemonSecret)
	fmt.Fprintf(w, "files        %s (shell exports: . %s)\n", s.Dir, envPath)
	fmt.Fprintln(w, "press Ctrl-C to stop")
}
