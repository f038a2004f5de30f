package cli

import (
	"embed"
	"fmt"
	"slices"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/mailkey/mailkey/internal/config"
)

// The scripts mailkey completion prints. Each asks mailkey __complete for the
// candidates of the word under the cursor, so that they follow the commands,
// flags and accounts of the binary and configuration in use.
//
//go:embed completion/mailkey.bash completion/mailkey.zsh completion/mailkey.fish
var completionScripts embed.FS

type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"The shell: bash, zsh or fish."`
}

func (c completionCmd) Run(e *env) error {
	script, err := completionScripts.ReadFile("completion/mailkey." + c.Shell)
	if err != nil {
		return err // kong's enum admits only the shells embedded above
	}
	_, err = e.stdout.Write(script)
	return err
}

// completeCmd is what the completion scripts run: the words after "mailkey" up
// to the cursor, the last one the word being completed (empty after a space).
type completeCmd struct {
	Words []string `arg:"" optional:"" passthrough:"" help:"The words of the command line after mailkey, the last one being completed."`
}

func (c completeCmd) Run(e *env) error {
	root, err := kong.New(new(commands), kong.Name("mailkey"), kong.Exit(func(int) {}))
	if err != nil {
		return err
	}
	for _, w := range complete(root.Model.Node, c.Words, accountNames) {
		fmt.Fprintln(e.stdout, w)
	}
	return nil
}

// accountNames lists the configured accounts, or none when the configuration
// cannot be read: a completion has nowhere to say why.
func accountNames() []string {
	path, err := config.Path()
	if err != nil {
		return nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil
	}
	return cfg.Names()
}

// complete returns the candidates for the last of words on the command line
// described by root: subcommands, flags, enum values and, for an argument
// called account or tagged predictor:"account", the names accounts lists. None means that the shell should
// complete file names, as it does for path flags.
func complete(root *kong.Node, words []string, accounts func() []string) []string {
	if len(words) == 0 {
		words = []string{""}
	}
	node, pos := root, 0
	var value *kong.Flag // the flag whose value comes next
	for _, w := range words[:len(words)-1] {
		switch {
		case value != nil:
			value = nil
		case w == "help" && node == root:
			// mailkey help COMMAND… is COMMAND… --help
		case strings.HasPrefix(w, "-"):
			if f := findFlag(node, w); f != nil && !f.IsBool() && !strings.Contains(w, "=") {
				value = f
			}
		default:
			if child := findCommand(node, w); child != nil {
				node, pos = child, 0
			} else {
				pos++
			}
		}
	}
	cur := words[len(words)-1]
	var out []string
	switch {
	case value != nil:
		out = enumValues(value.Value)
	case strings.HasPrefix(cur, "--") && strings.Contains(cur, "="):
		name, _, _ := strings.Cut(cur, "=")
		if f := findFlag(node, name); f != nil {
			for _, v := range enumValues(f.Value) {
				out = append(out, name+"="+v)
			}
		}
	case strings.HasPrefix(cur, "-"):
		for _, group := range node.AllFlags(true) {
			for _, f := range group {
				out = append(out, "--"+f.Name)
			}
		}
		if node == root {
			out = append(out, "--version")
		}
	default:
		for _, child := range node.Children {
			if child.Type == kong.CommandNode && !child.Hidden {
				out = append(out, child.Name)
			}
		}
		if node == root {
			out = append(out, "help")
		}
		if arg := positional(node, pos); len(out) == 0 && arg != nil {
			if out = enumValues(arg); out == nil && (arg.Name == "account" || arg.Tag.Get("predictor") == "account") {
				out = accounts()
			}
		}
	}
	return slices.DeleteFunc(out, func(c string) bool { return c == "" || !strings.HasPrefix(c, cur) })
}

// positional returns node's argument at position pos: a list argument takes every word
// from its own position on.
func positional(node *kong.Node, pos int) *kong.Value {
	switch n := len(node.Positional); {
	case pos < n:
		return node.Positional[pos]
	case n > 0 && node.Positional[n-1].IsSlice():
		return node.Positional[n-1]
	}
	return nil
}

func enumValues(v *kong.Value) []string {
	if v.Enum == "" {
		return nil
	}
	return v.EnumSlice()
}

// findCommand returns node's visible or hidden subcommand called name.
func findCommand(node *kong.Node, name string) *kong.Node {
	for _, child := range node.Children {
		if child.Type == kong.CommandNode && (child.Name == name || slices.Contains(child.Aliases, name)) {
			return child
		}
	}
	return nil
}

// findFlag returns the flag that word (--name, --name=value or -x) sets on
// node or one of its parents.
func findFlag(node *kong.Node, word string) *kong.Flag {
	name, _, _ := strings.Cut(word, "=")
	for _, group := range node.AllFlags(false) {
		for _, f := range group {
			if name == "--"+f.Name || (f.Short != 0 && name == "-"+string(f.Short)) {
				return f
			}
		}
	}
	return nil
}
