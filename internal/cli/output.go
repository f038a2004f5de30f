package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/mailkey/mailkey/internal/config"
)

// Output rules, written once:
//   - data goes to stdout, and only data (a token, a password, a table, JSON);
//   - everything else goes to stderr, each line prefixed "mailkey: ";
//   - a failure is one "mailkey: error: …" line, lower-case, no trailing
//     period, followed by "mailkey: hint: …" lines naming the next command;
//   - --json writes one JSON document to stdout;
//   - the exit status is 0 only on success.

// Exit statuses other than 0 (success), 1 (failure) and 2 (usage) are those
// of sysexits(3), which mail software understands: msmtp and fetchmail try
// again later on EX_TEMPFAIL.
const (
	exitTempFail = 75 // EX_TEMPFAIL: may pass by itself; try again later
	exitConfig   = 78 // EX_CONFIG: the configuration is wrong, not the login
)

// Error is an error worded for people, with the next step to take.
type Error struct {
	Msg  string
	Hint string // the next command to run, or what to change
	Code int    // exit status; 0 means 1
	Err  error  // the cause, for errors.Is/As; never printed beyond Msg
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// errorf builds an *Error with a hint.
func errorf(hint, format string, args ...any) *Error {
	return &Error{Msg: fmt.Sprintf(format, args...), Hint: hint}
}

// hinter is implemented by errors from other packages that know the next step.
type hinter interface{ Hint() string }

func report(w io.Writer, err error) {
	msg := err.Error()
	for _, line := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
		fmt.Fprintf(w, "mailkey: error: %s\n", line)
	}
	for _, line := range strings.Split(hintOf(err), "\n") {
		if line != "" {
			fmt.Fprintf(w, "mailkey: hint: %s\n", line)
		}
	}
}

// notef writes an informational line to stderr.
func (e *env) notef(format string, args ...any) {
	fmt.Fprintf(e.stderr, "mailkey: "+format+"\n", args...)
}

// warnf writes a warning line to stderr.
func (e *env) warnf(format string, args ...any) {
	fmt.Fprintf(e.stderr, "mailkey: warning: "+format+"\n", args...)
}

// writeJSON writes v as indented JSON to stdout.
func (e *env) writeJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// worded returns what report prints for err: its message, its hint and the
// exit status it gives, for a process that hands an error to another one
// (the detached refresher, the agent) to print.
func worded(err error) (msg, hint string, code int) {
	msg, code = err.Error(), 1
	var ee *Error
	if errors.As(err, &ee) && ee.Code != 0 {
		code = ee.Code
	}
	return msg, hintOf(err), code
}

// hintOf is the next step for err: an *Error's own hint, else what the
// package that returned err knows (hinter), else the CLI's words for a
// typed error of a package below, which names no command itself.
func hintOf(err error) string {
	var ee *Error
	if errors.As(err, &ee) && ee.Hint != "" {
		return ee.Hint
	}
	var h hinter
	if errors.As(err, &h) {
		if hint := h.Hint(); hint != "" {
			return hint
		}
	}
	var ua *config.UnknownAccountError
	if errors.As(err, &ua) && len(ua.Known) == 0 {
		return "add one with: mailkey add " + ua.Name + " --provider PROVIDER --email ADDRESS"
	}
	var ce *config.Error
	if errors.As(err, &ce) && errors.Is(err, fs.ErrNotExist) && ce.Line == 0 {
		return "create it with: mailkey add ACCOUNT --provider PROVIDER --email ADDRESS"
	}
	return ""
}
