package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// Version is set at build time with -ldflags "-X github.com/mailkey/mailkey/internal/cli.Version=…".
var Version = "dev"

// commands is the whole command line. Each subcommand lives in its own file
// as a struct with a Run(*env) error method.
type commands struct {
	Add      addCmd      `cmd:"" help:"Add an account to the configuration, or change one."`
	Login    loginCmd    `cmd:"" help:"Authorize an account (browser, --device or --paste)."`
	Token    tokenCmd    `cmd:"" help:"Print a valid access token for an account."`
	Status   statusCmd   `cmd:"" help:"Show accounts, their tokens and where secrets are kept."`
	Test     testCmd     `cmd:"" help:"Log in over IMAP, POP3 and SMTP and explain any failure."`
	Logout   logoutCmd   `cmd:"" help:"Revoke an account's tokens at the provider and forget them."`
	Password passwordCmd `cmd:"" help:"Manage local app passwords for proxy clients."`
	Serve    serveCmd    `cmd:"" help:"Run the local IMAP, POP3 and SMTP proxy."`
	Agent    agentCmd    `cmd:"" help:"Hold the opened token store and answer mailkey token over a socket."`
	Service  serviceCmd  `cmd:"" help:"Install mailkey serve as a systemd, launchd or Windows service."`
	Import   importCmd   `cmd:"" help:"Bring accounts and tokens in from other tools or mailkey export."`
	Export   exportCmd   `cmd:"" help:"Write accounts and their tokens to an encrypted bundle."`
	Config   configCmd   `cmd:"" help:"Check the configuration or print the paths in use."`
	Version  versionCmd  `cmd:"" help:"Print the version."`

	BackgroundRefresh refreshCmd `cmd:"" name:"background-refresh" hidden:"" help:"Refresh an account's token, detached (mailkey token starts it)."`
}

// env is what every command gets: its streams, a context cancelled on
// SIGINT, SIGTERM or SIGHUP, and the lifecycle that sees sent token requests
// through before the process exits.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	life   *lifecycle
}

// Main runs mailkey with args (without the program name) and returns the
// process exit status. A token request sent before a signal is seen through
// to the store before Main returns; a second signal ends that wait.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	life := &lifecycle{}
	ctx, stop := life.watchSignals(stderr)
	defer stop()
	code := runWith(ctx, life, args, stdin, stdout, stderr)
	if sig := life.settle(stderr); sig != nil {
		return signalStatus(sig)
	}
	return code
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	life := &lifecycle{}
	code := runWith(ctx, life, args, stdin, stdout, stderr)
	life.settle(stderr)
	return code
}

func runWith(ctx context.Context, life *lifecycle, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	args = aliases(args)
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, life: life}
	var err error
	if cmd := quick(args); cmd != nil {
		err = cmd.Run(e) // watches the exit signals itself where it may wait
	} else {
		life.watch()
		kctx, exitCode, perr := parse(grammar(args), args, stdout, stderr)
		if exitCode >= 0 {
			return exitCode // --help printed
		}
		if perr != nil {
			report(stderr, perr)
			return 2
		}
		err = kctx.Run(e)
	}
	if err != nil {
		report(stderr, err)
		var ee *Error
		if errors.As(err, &ee) && ee.Code != 0 {
			return ee.Code
		}
		return 1
	}
	return 0
}

// parse parses args into grammar (see grammar). An exit code of 0 or more means that kong
// printed what was asked for (--help) and the process should end with it.
func parse(grammar any, args []string, stdout, stderr io.Writer) (*kong.Context, int, error) {
	exitCode := -1
	parser, err := kong.New(grammar,
		kong.Name("mailkey"),
		kong.Description("OAuth 2.0 for IMAP, POP3 and SMTP: tokens for mail clients, a local proxy for the rest."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exitCode = code }),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, NoExpandSubcommands: true}),
	)
	if err != nil {
		return nil, -1, err
	}
	kctx, err := parser.Parse(args)
	if exitCode >= 0 {
		return nil, exitCode, nil
	}
	if err != nil {
		return nil, -1, &Error{Msg: err.Error(), Hint: "mailkey --help"}
	}
	return kctx, -1, nil
}

// grammar returns what kong parses args with: a pointer to commands, or, when args start
// with a command's name and ask for no help, to a struct holding only that command's field.
// Building kong's model reflects over every field and tag it is given, which cost more than
// anything else at the start of a short command such as the credential helper's mailkey
// token; parsing one command's arguments and the usage shown on their errors need only that
// command. TestGrammarOfOneCommand holds both grammars to the same results.
func grammar(args []string) any {
	if len(args) == 0 || slices.ContainsFunc(args, isHelpFlag) {
		return new(commands)
	}
	t := reflect.TypeFor[commands]()
	for i := range t.NumField() {
		if f := t.Field(i); commandName(f) == args[0] {
			return reflect.New(reflect.StructOf([]reflect.StructField{f})).Interface()
		}
	}
	return new(commands)
}

// commandName is the name kong gives the command of field f: its name tag, or the field's
// name in lower case (every command here is one word or has a name tag).
func commandName(f reflect.StructField) string {
	if n := f.Tag.Get("name"); n != "" {
		return n
	}
	return strings.ToLower(f.Name)
}

// isHelpFlag reports whether a looks like kong's help flag, which lists the siblings of a
// command (or the whole tree) and so needs the whole grammar.
func isHelpFlag(a string) bool {
	return a == "-h" || a == "--help" || strings.HasPrefix(a, "--help=") ||
		(strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && strings.Contains(a, "h"))
}

// aliases rewrites the spellings users try from other tools into mailkey's
// own: "help [COMMAND…]" is "[COMMAND…] --help", and "--version" alone is
// the version command.
func aliases(args []string) []string {
	switch {
	case len(args) > 0 && args[0] == "help":
		return append(slices.Clone(args[1:]), "--help")
	case len(args) == 1 && args[0] == "--version":
		return []string{"version"}
	}
	return args
}

type versionCmd struct{}

func (versionCmd) Run(e *env) error {
	fmt.Fprintln(e.stdout, "mailkey", version())
	return nil
}

// version is Version when the build set it, else what the Go toolchain
// recorded: the module's version for go install …@VERSION, or the commit
// a build from a checkout was made of ("dev (COMMIT)", "modified" when the
// checkout had changes).
func version() string {
	if Version != "dev" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return Version
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified == "true" {
		return "dev (" + rev + ", modified)"
	}
	return "dev (" + rev + ")"
}
