package cli

import (
	"fmt"
	"io"
	"strings"
	"unicode"

	"github.com/alecthomas/kong"
)

// manCmd prints mailkey(1), written from the same command definitions that
// parse the command line and print --help, so the page cannot fall behind.
type manCmd struct{}

func (manCmd) Run(e *env) error {
	parser, err := kong.New(new(commands), kong.Name("mailkey"), kong.Description(description), kong.Exit(func(int) {}))
	if err != nil {
		return err
	}
	writeMan(e.stdout, parser.Model, buildVersion().Version)
	return nil
}

// manEnvironment and manExit are what the page says beyond the commands; docs/configuration.md
// and the output rules in output.go are their long form.
var manEnvironment = [][2]string{
	{"MAILKEY_CONFIG", "Path of the configuration file (default: $XDG_CONFIG_HOME/mailkey/config.toml)."},
	{"MAILKEY_STATE_DIR", "Path of the state folder: tokens, key, app password hashes (default: $XDG_STATE_HOME/mailkey/)."},
	{"MAILKEY_PASSPHRASE", "Passphrase for the token store, used when no keyring answers or the keyring is disabled."},
	{"MAILKEY_NO_KEYRING", "1: never use the OS keyring."},
	{"MAILKEY_NO_AGENT", "1: mailkey token reads the store itself even when a token agent runs."},
	{"BROWSER", "Browser command for mailkey login; the URL is always printed too."},
}

var manExit = [][2]string{
	{"0", "Success."},
	{"1", "Failure; the error and hint lines on standard error say what to do."},
	{"2", "The command line is wrong."},
	{"75", "The provider is temporarily unreachable: a retry may succeed (EX_TEMPFAIL)."},
	{"78", "The provider rejects the app's client credentials or scopes: fix the configuration, not the login (EX_CONFIG)."},
}

// writeMan writes the page for app in roff (man(7) macros).
func writeMan(w io.Writer, app *kong.Application, version string) {
	fmt.Fprintf(w, ".TH MAILKEY 1 \"\" %s \"User Commands\"\n", roffQuote("mailkey "+version))
	fmt.Fprintf(w, ".SH NAME\nmailkey \\- %s\n", roff(strings.TrimSuffix(app.Help, ".")))
	fmt.Fprintf(w, ".SH SYNOPSIS\n.B mailkey\n.I command\n[\\fIflags\\fR]\n")
	fmt.Fprintf(w, ".SH DESCRIPTION\n%s\n", roff(app.Help))
	fmt.Fprintf(w, ".PP\nData goes to standard output; everything else goes to standard error as "+
		"\\fBmailkey: error:\\fR lines followed by \\fBmailkey: hint:\\fR lines naming the next command to run. "+
		"Commands that take \\fB\\-\\-json\\fR print one JSON document for programs.\n")
	fmt.Fprintf(w, ".SH COMMANDS\n")
	var commands func(n *kong.Node)
	commands = func(n *kong.Node) {
		for _, c := range n.Children {
			if c.Type != kong.CommandNode || c.Hidden {
				continue
			}
			if c.Leaf() {
				manCommand(w, c)
			}
			commands(c)
		}
	}
	commands(app.Node)
	fmt.Fprintf(w, ".SH ENVIRONMENT\n")
	for _, v := range manEnvironment {
		fmt.Fprintf(w, ".TP\n.B %s\n%s\n", v[0], roff(v[1]))
	}
	fmt.Fprintf(w, ".SH EXIT STATUS\n")
	for _, v := range manExit {
		fmt.Fprintf(w, ".TP\n.B %s\n%s\n", v[0], roff(v[1]))
	}
	fmt.Fprintf(w, ".SH SEE ALSO\n"+
		"\\fBmailkey help\\fR \\fIcommand\\fR, and the guides in the docs folder of the source: "+
		"configuration, one page per mail client, provider set-up and troubleshooting.\n")
}

// manCommand writes one leaf command: its usage line, help, arguments and flags.
func manCommand(w io.Writer, c *kong.Node) {
	fmt.Fprintf(w, ".SS %s\n", roffQuote("mailkey "+c.Summary()))
	fmt.Fprintf(w, "%s\n", roff(c.Help))
	for _, p := range c.Positional {
		fmt.Fprintf(w, ".TP\n.I %s\n%s\n", roff(p.Name), roff(p.Help))
	}
	for _, f := range c.Flags {
		if f.Hidden {
			continue
		}
		fmt.Fprintf(w, ".TP\n\\fB\\-\\-%s\\fR", roff(f.Name))
		if f.Short != 0 {
			fmt.Fprintf(w, ", \\fB\\-%s\\fR", roff(string(f.Short)))
		}
		if !f.IsBool() && !f.IsCounter() {
			fmt.Fprintf(w, " \\fI%s\\fR", roff(f.FormatPlaceHolder()))
		}
		fmt.Fprintf(w, "\n%s\n", roff(f.Help))
	}
}

// roff escapes text for a roff line: backslashes, hyphens and characters beyond
// ASCII (an ellipsis as three dots, others as \[uXXXX], which every roff reads
// without a preprocessor), and a leading dot or quote that would make the line a
// request.
func roff(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r == '-':
			b.WriteString(`\-`)
		case r == '\n':
			b.WriteByte(' ')
		case r == '…':
			b.WriteString("...") // which every terminal's charset has, UTF-8 or not
		case r > unicode.MaxASCII:
			fmt.Fprintf(&b, `\[u%04X]`, r)
		default:
			b.WriteRune(r)
		}
	}
	s = b.String()
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffQuote is roff(s) as one quoted macro argument.
func roffQuote(s string) string {
	return `"` + strings.ReplaceAll(roff(s), `"`, `\(dq`) + `"`
}
