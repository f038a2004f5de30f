package cli

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// TestGrammarOfOneCommand parses command lines with the whole grammar and with the one grammar
// picks, and wants the same outcome: the same command with the same values, or the same error,
// output and exit code.
func TestGrammarOfOneCommand(t *testing.T) {
	lines := []string{
		"token work", "token", "token work extra", "token work --sasl xoauth2", "token work --sasl=oauthbearer --json",
		"token work --sasl bad", "token work --bogus", "token --json work", "token work -x", "token -- -work",
		"add work --provider google --email me@example.com", "add", "add work --provider", "add work --scope a --scope b --email x",
		"add work --client-secret - --provider microsoft --tenant organizations --email me@example.com",
		"login work", "login work --device", "login work --device --paste", "login work --import",
		"status", "status work --json", "status a b",
		"test work", "test work --imap --smtp --json", "test",
		"logout", "logout work", "logout work now",
		"password", "password add work --label phone", "password list work", "password remove work 3", "password bogus",
		"serve", "serve --imap 127.0.0.1:1143 --pop3 off", "serve --bogus", "serve extra",
		"config", "config check", "config path", "config bogus",
		"version", "version extra", "tokens work", "Token work", "",
		"background-refresh work", "background-refresh", "backgroundrefresh work",
	}
	var cmds commands
	root, err := kong.New(&cmds)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range root.Model.Node.Children {
		lines = append(lines, n.Name, n.Name+" --bogus", n.Name+" a b c d")
	}
	for _, line := range lines {
		args := strings.Fields(line)
		g := grammar(args)
		if _, whole := g.(*commands); !whole && (len(args) == 0 || reflect.ValueOf(g).Elem().NumField() != 1) {
			t.Fatalf("%q: grammar %T", line, g)
		}
		want, wantValues := parseOutcome(t, new(commands), args)
		got, gotValues := parseOutcome(t, g, args)
		if got != want || !reflect.DeepEqual(gotValues, wantValues) {
			t.Errorf("mailkey %s:\n got %s %+v\nwant %s %+v", line, got, gotValues, want, wantValues)
		}
	}
}

// parseOutcome describes what parsing args into grammar gave: the exit code kong asked for,
// the error, the selected command and the output; and the values of the command's struct.
func parseOutcome(t *testing.T, grammar any, args []string) (string, any) {
	t.Helper()
	var out, errOut bytes.Buffer
	kctx, code, err := parse(grammar, args, &out, &errOut)
	s := fmt.Sprintf("exit %d, error %v", code, err)
	var values any
	if kctx != nil {
		top, _, _ := strings.Cut(kctx.Selected().Path(), " ")
		g := reflect.ValueOf(grammar).Elem()
		for i := range g.NumField() {
			if commandName(g.Type().Field(i)) == top {
				s += fmt.Sprintf(", command %q", kctx.Command())
				values = g.Field(i).Interface()
			}
		}
	}
	return s + fmt.Sprintf(", stdout %q, stderr %q", out.String(), errOut.String()), values
}
