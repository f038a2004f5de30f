package config

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// pos is a place in the file, 1-based.
type pos struct{ line, col int }

// item is one key = value of the document, flattened to its full path,
// with the value copied out of the parser's buffers.
type item struct {
	path []string
	at   pos
	kind unstable.Kind
	str  string   // kind String
	list []string // kind Array: the string elements
	// badElem is the kind of the first element of an Array that is not a
	// string, Invalid when there is none.
	badElem unstable.Kind
	b       bool // kind Bool
	// bad is set once a type error has been recorded for the item, so
	// that later checks neither repeat it nor call the key missing.
	bad bool
}

// header is a [table] or [[array table]] line.
type header struct {
	path  []string
	at    pos
	array bool
}

type document struct {
	items   []*item
	headers []*header
}

// lineIndex maps byte offsets to positions.
type lineIndex []int // offsets at which lines start

func newLineIndex(data []byte) lineIndex {
	li := lineIndex{0}
	for i, c := range data {
		if c == '\n' {
			li = append(li, i+1)
		}
	}
	return li
}

func (li lineIndex) pos(offset int) pos {
	n := sort.Search(len(li), func(i int) bool { return li[i] > offset }) - 1
	if n < 0 {
		n = 0
	}
	return pos{line: n + 1, col: offset - li[n] + 1}
}

// offsetIn returns the offset of sub within data, which it must be a
// subslice of, or -1.
func offsetIn(data, sub []byte) int {
	if sub == nil {
		return -1
	}
	off := cap(data) - cap(sub)
	if off < 0 || off > len(data) {
		return -1
	}
	return off
}

// isTablePath reports whether the schema has a table at path, so that an
// inline table value there is read as keys rather than as a wrong type.
func isTablePath(path []string) bool {
	switch len(path) {
	case 1:
		return path[0] == "proxy" || path[0] == "accounts"
	case 2:
		return path[0] == "accounts"
	}
	return false
}

// syntaxError is a document the TOML grammar rejects.
type syntaxError struct {
	at  pos
	msg string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.at.line, e.msg) }

// parseDocument checks data against the TOML grammar and semantics
// (duplicate keys, redefined tables) and flattens it into items.
func parseDocument(data []byte) (*document, *syntaxError) {
	li := newLineIndex(data)
	var p unstable.Parser
	p.Reset(data)
	doc := &document{}
	var table []string
	inArray := false
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			path, at := keyPath(&p, li, e.Key())
			doc.headers = append(doc.headers, &header{path: path, at: at, array: e.Kind == unstable.ArrayTable})
			table, inArray = path, e.Kind == unstable.ArrayTable
		case unstable.KeyValue:
			if !inArray {
				flatten(&p, li, table, e, doc)
			}
		}
	}
	if err := p.Error(); err != nil {
		return nil, toSyntaxError(data, li, err)
	}
	// The grammar is fine; let the decoder find what the grammar allows
	// but TOML forbids: keys defined twice, tables defined twice.
	var m map[string]any
	if err := toml.Unmarshal(data, &m); err != nil {
		return nil, toSyntaxError(data, li, err)
	}
	return doc, nil
}

func toSyntaxError(data []byte, li lineIndex, err error) *syntaxError {
	var perr *unstable.ParserError
	var derr *toml.DecodeError
	offset := -1
	var msg string
	switch {
	case errors.As(err, &perr):
		offset = offsetIn(data, perr.Highlight)
		msg = perr.Message
	case errors.As(err, &derr):
		line, col := derr.Position()
		if line > 0 && line <= len(li) {
			offset = li[line-1] + max(col-1, 0)
		}
		msg = derr.Error()
		msg = string(bytes.TrimPrefix([]byte(msg), []byte("toml: ")))

	default:
		msg = "invalid TOML"
	}
	if offset < 0 || offset > len(data) {
		offset = len(data)
	}
	if inSecretStatement(data, offset) {
		msg = "syntax error in a secret value (the text is not shown)"
	}
	return &syntaxError{at: li.pos(offset), msg: msg}
}

// inSecretStatement reports whether the statement around offset may hold
// a secret, so that an error message quoting parts of it must not be
// shown. It is deliberately coarse: any mention of client_secret between
// the start of the statement and the end of the error's line counts.
func inSecretStatement(data []byte, offset int) bool {
	var p unstable.Parser
	p.Reset(data)
	start := 0
	for p.NextExpression() {
		e := p.Expression()
		end := -1
		if e.Kind == unstable.KeyValue {
			r := e.Raw
			if int(r.Offset) <= offset && offset < int(r.Offset+r.Length) {
				start = int(r.Offset)
				break
			}
			end = int(r.Offset + r.Length)
		} else if e.Kind == unstable.Table || e.Kind == unstable.ArrayTable {
			if k := e.Child(); k != nil {
				end = int(k.Raw.Offset + k.Raw.Length)
			}
		}
		if end > offset {
			break
		}
		if end >= 0 {
			start = end
		}
	}
	stop := offset
	for stop < len(data) && data[stop] != '\n' {
		stop++
	}
	if start > stop {
		start = stop
	}
	return bytes.Contains(data[start:stop], []byte("client_secret"))
}

// keyPath returns the parts of a dotted key and the position of its first
// part.
func keyPath(p *unstable.Parser, li lineIndex, it unstable.Iterator) ([]string, pos) {
	var path []string
	at := pos{1, 1}
	for it.Next() {
		k := it.Node()
		if path == nil {
			at = li.pos(int(k.Raw.Offset))
		}
		path = append(path, string(k.Data))
	}
	return path, at
}

// flatten records the key-value e under the table prefix, descending into
// inline tables where the schema has a table.
func flatten(p *unstable.Parser, li lineIndex, prefix []string, e *unstable.Node, doc *document) {
	rel, at := keyPath(p, li, e.Key())
	path := append(append([]string(nil), prefix...), rel...)
	v := e.Value()
	if v.Kind == unstable.InlineTable && isTablePath(path) {
		it := v.Children()
		for it.Next() {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				flatten(p, li, path, c, doc)
			}
		}
		// An empty inline table still declares the table (an account).
		doc.headers = append(doc.headers, &header{path: path, at: at})
		return
	}
	itm := &item{path: path, at: at, kind: v.Kind}
	switch v.Kind {
	case unstable.String:
		itm.str = string(v.Data)
	case unstable.Bool:
		itm.b = string(v.Data) == "true"
	case unstable.Array:
		itm.list = []string{}
		it := v.Children()
		for it.Next() {
			c := it.Node()
			switch c.Kind {
			case unstable.Comment:
			case unstable.String:
				itm.list = append(itm.list, string(c.Data))
			default:
				if itm.badElem == unstable.Invalid {
					itm.badElem = c.Kind
				}
			}
		}
	}
	doc.items = append(doc.items, itm)
}

// kindName words a TOML value kind for error messages.
func kindName(k unstable.Kind) string {
	switch k {
	case unstable.String:
		return "a string"
	case unstable.Bool:
		return "a boolean"
	case unstable.Integer:
		return "an integer"
	case unstable.Float:
		return "a number"
	case unstable.Array:
		return "an array"
	case unstable.InlineTable, unstable.Table:
		return "a table"
	case unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		return "a date or time"
	}
	return "a value of another type"
}
