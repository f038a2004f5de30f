package e2e

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Block is one fenced code block of a Markdown file, as the tests that run the documentation
// read it. Its info string is the language and then attributes, ```muttrc file=~/.muttrc
// recipe=gmail```: Markdown renderers show the language and ignore the rest, so the page
// reads as it did, and the tests know what the block is and where it goes.
type Block struct {
	Lang    string            // the first word of the info string
	Attrs   map[string]string // the key=value words after it
	Text    string            // the block's lines, each ending in "\n"
	Section string            // the nearest heading above it, without its #s
	Line    int               // the line of the opening fence, from 1
}

// Attr returns the value of the attribute key ("" when the block has none).
func (b Block) Attr(key string) string { return b.Attrs[key] }

// CodeBlocks returns the fenced code blocks of the Markdown file at path, indented ones (in
// list items) included, with the indentation of their fence removed.
func CodeBlocks(path string) ([]Block, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		blocks  []Block
		cur     *Block
		fence   string // the opening fence's backticks
		margin  int    // the opening fence's indentation, removed from the block's lines
		section string
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		indent := line[:len(line)-len(trimmed)]
		if cur != nil {
			if trimmed == fence {
				blocks = append(blocks, *cur)
				cur = nil
				continue
			}
			cur.Text += line[min(len(indent), margin):] + "\n"
			continue
		}
		if strings.HasPrefix(trimmed, "```") {
			ticks := trimmed[:len(trimmed)-len(strings.TrimLeft(trimmed, "`"))]
			fence, margin = ticks, len(indent)
			words := strings.Fields(trimmed[len(ticks):])
			b := Block{Attrs: map[string]string{}, Section: section, Line: n}
			for i, w := range words {
				if i == 0 && !strings.Contains(w, "=") {
					b.Lang = w
					continue
				}
				k, v, ok := strings.Cut(w, "=")
				if !ok {
					return nil, fmt.Errorf("%s:%d: %q in the info string is not key=value", path, n, w)
				}
				b.Attrs[k] = v
			}
			cur = &b
			continue
		}
		if strings.HasPrefix(line, "#") {
			section = strings.TrimSpace(strings.TrimLeft(line, "#"))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		return nil, fmt.Errorf("%s:%d: code block not closed", path, cur.Line)
	}
	return blocks, nil
}

// Recipe returns the blocks of the Markdown file at path whose recipe attribute is name, in
// the order of the page; it is an error when there is none, so that a renamed recipe fails
// the test that runs it.
func Recipe(path, name string) ([]Block, error) {
	all, err := CodeBlocks(path)
	if err != nil {
		return nil, err
	}
	var out []Block
	for _, b := range all {
		if b.Attr("recipe") == name {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no code block with recipe=%s", path, name)
	}
	return out, nil
}
