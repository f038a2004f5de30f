package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/mailkey/mailkey/internal/atomicfile"
	"github.com/mailkey/mailkey/internal/flock"
)

// editLockWait bounds how long AddAccount waits for another process that
// is editing the same file.
const editLockWait = 30 * time.Second

// KV is one account setting for AddAccount. Value is a string, a []string
// (scopes, protocols) or a bool.
type KV struct {
	Key   string
	Value any
}

// AddAccount sets keys of the account called name in the configuration
// file at path, creating the file (mode 0600, directory 0700) if needed.
//
// Everything else in the file stays byte for byte: comments, blank lines,
// other accounts, order. A new account is appended as an [accounts.NAME]
// table. In an existing account each key is replaced where it is written
// (in a table, a dotted key or an inline table) and new keys are added at
// the end of the account's table.
//
// The result is validated as Load would before anything is written; if it
// has problems the file is left untouched and the problems are returned
// as Errors. The file is replaced atomically (temporary file, fsync,
// rename) with mode 0600; a symbolic link at path is followed. Concurrent
// calls, from this process or others, are serialized by a lock file
// (.NAME.lock) beside the configuration file.
func AddAccount(path, name string, set []KV) error {
	target, err := checkEdit(path, name, set)
	if err != nil {
		return err
	}
	// A refused edit leaves no trace: it is found out before the directory
	// or the lock file is created.
	if _, err := editedFile(path, target, name, set); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return Errors{{File: path, Msg: "cannot create the directory: " + describeFileErr(err), err: err}}
	}
	// Two edits at once (two "mailkey add" runs) must not lose one
	// another's change: read, edit and replace under a lock beside the file.
	ctx, cancel := context.WithTimeout(context.Background(), editLockWait)
	defer cancel()
	unlock, err := flock.Lock(ctx, filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".lock"))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return Errors{{File: path, Msg: fmt.Sprintf("another mailkey process has been editing this file for %s", editLockWait),
				Hint: "wait for it to finish, then run the command again"}}
		}
		return Errors{{File: path, Msg: "cannot lock the file for editing: " + describeFileErr(err), err: err}}
	}
	defer unlock()
	// The file may have changed while this process waited: edit it afresh.
	out, err := editedFile(path, target, name, set)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(target, out, 0o600); err != nil {
		return Errors{{File: path, Msg: "cannot write: " + describeFileErr(err), err: err}}
	}
	return nil
}

// PreviewAccount returns the account called name as AddAccount(path, name,
// set) would leave it, checked as Load would check it, and writes nothing.
func PreviewAccount(path, name string, set []KV) (*Account, error) {
	target, err := checkEdit(path, name, set)
	if err != nil {
		return nil, err
	}
	out, err := editedFile(path, target, name, set)
	if err != nil {
		return nil, err
	}
	cfg, err := parse(path, out)
	if err != nil {
		return nil, err
	}
	return cfg.Account(name)
}

// checkEdit checks the account name and each setting of an edit, and
// returns the file the edit goes to: path, or where its symbolic link
// points.
func checkEdit(path, name string, set []KV) (string, error) {
	if err := CheckAccountName(name); err != nil {
		return "", Errors{{File: path, Field: fieldName("accounts", name), Msg: err.Error(),
			Hint: "use letters, digits, '.', '_', '-' and '@', at most 64 characters, not starting with '.'"}}
	}
	for _, kv := range set {
		if err := checkKV(kv); err != nil {
			err.File = path
			err.Field = fieldName("accounts", name, kv.Key)
			return "", Errors{err}
		}
	}
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		return resolved, nil
	}
	return path, nil
}

// editedFile reads target and returns it with the account edited, after
// checking the result as Load would. A missing file reads as empty.
func editedFile(path, target, name string, set []KV) ([]byte, error) {
	data, err := os.ReadFile(target)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, Errors{{File: path, Msg: describeFileErr(err), err: err}}
	}
	out, err := editAccount(data, name, set)
	if err != nil {
		var se *syntaxError
		if errors.As(err, &se) {
			return nil, Errors{{File: path, Line: se.at.line, Column: se.at.col, Msg: se.msg, Hint: "fix the TOML syntax first (https://toml.io)"}}
		}
		return nil, Errors{{File: path, Field: fieldName("accounts", name), Msg: err.Error()}}
	}
	if _, err := parse(path, out); err != nil {
		return nil, err
	}
	return out, nil
}

func checkKV(kv KV) *Error {
	fk, ok := accountFields[kv.Key]
	if !ok {
		hint := "valid keys: " + fmt.Sprint(sortedKeys(accountFields))
		if s := suggest(kv.Key, sortedKeys(accountFields)); s != "" {
			hint = "did you mean " + s + "?"
		}
		return &Error{Msg: "unknown key", Hint: hint}
	}
	var good bool
	switch kv.Value.(type) {
	case string:
		good = fk == fString
	case []string:
		good = fk == fList
	case bool:
		good = fk == fBool
	}
	if !good {
		return &Error{Msg: "must be " + fk.want(kv.Key), Hint: fk.hint(kv.Key)}
	}
	return nil
}

// edit is one splice of the original bytes.
type edit struct {
	at, del int
	text    string
}

// accountLayout is where an account lives in a document.
type accountLayout struct {
	// keys maps a key to the byte range of its value.
	keys map[string][2]int
	// table: the account has an [accounts.NAME] header; tableEnd is the
	// offset just after the last line belonging to it (its header or its
	// last key-value), tableIndent the indentation of that key-value.
	table       bool
	tableEnd    int
	tableIndent string
	// inline: the account is an inline table; inlineAt is where a new
	// ", key = value" goes; inlineEmpty: it has no keys yet.
	inline      bool
	inlineAt    int
	inlineEmpty bool
	// dotted: the account is written as dotted keys; dottedEnd is the end
	// of the last such line and dottedPrefix the key text before the
	// account's key (e.g. "accounts.work.").
	dotted       bool
	dottedEnd    int
	dottedPrefix string
	dottedIndent string
}

// editAccount returns data with the account's keys set.
func editAccount(data []byte, name string, set []KV) ([]byte, error) {
	lay, err := layout(data, name)
	if err != nil {
		return nil, err
	}
	nl := "\n"
	if bytes.Contains(data, []byte("\r\n")) {
		nl = "\r\n"
	}
	var edits []edit
	var added []string // new "key = value" texts
	for _, kv := range lastWins(set) {
		v, err := tomlValue(kv.Value)
		if err != nil {
			return nil, err
		}
		if r, ok := lay.keys[kv.Key]; ok {
			edits = append(edits, edit{at: r[0], del: r[1] - r[0], text: v})
			continue
		}
		added = append(added, fieldName(kv.Key)+" = "+v)
	}
	if len(added) > 0 {
		switch {
		case lay.table:
			var t bytes.Buffer
			for _, a := range added {
				t.WriteString(lay.tableIndent + a + nl)
			}
			edits = append(edits, ensureNewline(data, lay.tableEnd, nl, t.String()))
		case lay.inline:
			var t bytes.Buffer
			for i, a := range added {
				if i > 0 || !lay.inlineEmpty {
					t.WriteString(", ")
				} else {
					t.WriteString(" ")
				}
				t.WriteString(a)
			}
			if lay.inlineEmpty {
				t.WriteString(" ")
			}
			edits = append(edits, edit{at: lay.inlineAt, text: t.String()})
		case lay.dotted:
			var t bytes.Buffer
			for _, a := range added {
				t.WriteString(lay.dottedIndent + lay.dottedPrefix + a + nl)
			}
			edits = append(edits, ensureNewline(data, lay.dottedEnd, nl, t.String()))
		default:
			var t bytes.Buffer
			if len(bytes.TrimSpace(data)) > 0 {
				t.WriteString(nl)
			}
			t.WriteString("[" + fieldName("accounts", name) + "]" + nl)
			for _, a := range added {
				t.WriteString(a + nl)
			}
			edits = append(edits, ensureNewline(data, len(data), nl, t.String()))
		}
	}
	slices.SortStableFunc(edits, func(a, b edit) int { return b.at - a.at })
	out := slices.Clone(data)
	for _, e := range edits {
		out = slices.Concat(out[:e.at], []byte(e.text), out[e.at+e.del:])
	}
	return out, nil
}

// ensureNewline returns an insertion of text at offset at, preceded by a
// newline if the byte before it is not one (a file without a final
// newline).
func ensureNewline(data []byte, at int, nl, text string) edit {
	if at > 0 && data[at-1] != '\n' {
		text = nl + text
	}
	return edit{at: at, text: text}
}

// lastWins drops all but the last setting of each key, as a command line
// would, keeping the order of first appearance.
func lastWins(set []KV) []KV {
	idx := map[string]int{}
	var out []KV
	for _, kv := range set {
		if i, ok := idx[kv.Key]; ok {
			out[i] = kv
			continue
		}
		idx[kv.Key] = len(out)
		out = append(out, kv)
	}
	return out
}

// layout finds where the account called name is written in data.
func layout(data []byte, name string) (*accountLayout, error) {
	if _, serr := parseDocument(data); serr != nil {
		return nil, serr
	}
	lay := &accountLayout{keys: map[string][2]int{}}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	inAccountTable := false
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keyParts(e.Key())
			inAccountTable = e.Kind == unstable.Table && slices.Equal(table, []string{"accounts", name})
			if inAccountTable {
				lay.table = true
				lay.tableEnd = lineEnd(data, lastKeyEnd(e.Key()))
			}
		case unstable.KeyValue:
			if inAccountTable {
				lay.tableEnd = lineEnd(data, int(e.Raw.Offset+e.Raw.Length))
				lay.tableIndent = indentOf(data, int(e.Raw.Offset))
			}
			scanKeyValue(data, lay, table, e, name, true)
		}
	}
	if err := p.Error(); err != nil {
		return nil, err
	}
	return lay, nil
}

// scanKeyValue records the key-value e (under prefix) if it belongs to
// the account, descending into inline tables.
func scanKeyValue(data []byte, lay *accountLayout, prefix []string, e *unstable.Node, name string, topLevel bool) {
	rel := keyParts(e.Key())
	path := append(slices.Clone(prefix), rel...)
	v := e.Value()
	acct := []string{"accounts", name}
	switch {
	case len(path) == 3 && slices.Equal(path[:2], acct):
		lay.keys[path[2]] = valueRange(data, e)
		if topLevel && len(rel) > 1 && !lay.table {
			lay.dotted = true
			lay.dottedEnd = lineEnd(data, int(e.Raw.Offset+e.Raw.Length))
			lay.dottedIndent = indentOf(data, int(e.Raw.Offset))
			lastKey := lastKeyNode(e.Key())
			lay.dottedPrefix = string(data[e.Raw.Offset:lastKey.Raw.Offset])
		}
	case v.Kind == unstable.InlineTable && len(path) <= 2 && slices.Equal(path, acct[:len(path)]):
		if len(path) == 2 {
			lay.inline = true
			end := int(e.Raw.Offset + e.Raw.Length) // just after '}'
			lay.inlineAt = end - 1
			lay.inlineEmpty = true
		}
		it := v.Children()
		for it.Next() {
			c := it.Node()
			if c.Kind != unstable.KeyValue {
				continue
			}
			if len(path) == 2 {
				lay.inlineEmpty = false
				lay.inlineAt = int(c.Raw.Offset + c.Raw.Length)
			}
			scanKeyValue(data, lay, path, c, name, false)
		}
	}
}

func keyParts(it unstable.Iterator) []string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}

func lastKeyNode(it unstable.Iterator) *unstable.Node {
	var last *unstable.Node
	for it.Next() {
		last = it.Node()
	}
	return last
}

func lastKeyEnd(it unstable.Iterator) int {
	k := lastKeyNode(it)
	return int(k.Raw.Offset + k.Raw.Length)
}

// valueRange returns the byte range of the value of key-value e: from the
// first non-blank after '=' to the end of the expression.
func valueRange(data []byte, e *unstable.Node) [2]int {
	k := lastKeyNode(e.Key())
	i := int(k.Raw.Offset + k.Raw.Length)
	// A quoted last key ends at its closing quote; skip to '='.
	for i < len(data) && data[i] != '=' {
		i++
	}
	i++
	for i < len(data) && (data[i] == ' ' || data[i] == '\t') {
		i++
	}
	return [2]int{i, int(e.Raw.Offset + e.Raw.Length)}
}

// lineEnd returns the offset after the newline ending the line that holds
// offset, or len(data).
func lineEnd(data []byte, offset int) int {
	if i := bytes.IndexByte(data[offset:], '\n'); i >= 0 {
		return offset + i + 1
	}
	return len(data)
}

// indentOf returns the blanks before offset on its line.
func indentOf(data []byte, offset int) string {
	start := bytes.LastIndexByte(data[:offset], '\n') + 1
	return string(data[start:offset])
}
