package config

import (
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a configuration file. Line and Column are
// 1-based; they are 0 when the problem has no place in the file (a file
// that cannot be read). Field is the dotted key, as in
// "accounts.work.email". Msg never contains the value of a secret
// (client_secret, client_secret_cmd). Hint says what would be valid.
type Error struct {
	File         string
	Line, Column int
	Field        string
	Msg, Hint    string
	// Account names the account whose table the problem is in, for the
	// problems LoadServing leaves an account out for; "" otherwise.
	Account string

	err error // wrapped cause, e.g. fs.ErrNotExist
}

// Error returns "FILE:LINE: FIELD: MSG", leaving out the parts that are
// unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the cause, if any (errors.Is(err, fs.ErrNotExist) holds
// for a missing file).
func (e *Error) Unwrap() error { return e.err }

// Errors is every problem Load found, ordered by line. It is the error type
// Load and AddAccount return; errors.As finds each *Error in it.
type Errors []*Error

// Error joins the problems, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each *Error to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es Errors) sort() {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
}

// UnknownAccountError is returned by Config.Account for a name the file
// does not define.
type UnknownAccountError struct {
	Name  string
	File  string
	Known []string // account names in the file
}

func (e *UnknownAccountError) Error() string {
	return fmt.Sprintf("no account %q in %s", e.Name, e.File)
}

// Hint suggests a close name, or lists the known ones; with none known it
// is empty (the CLI says how to add one).
func (e *UnknownAccountError) Hint() string {
	if s := suggest(e.Name, e.Known); s != "" {
		return fmt.Sprintf("did you mean %s?", s)
	}
	if len(e.Known) == 0 {
		return ""
	}
	return "accounts: " + strings.Join(e.Known, ", ")
}

// suggest returns the candidate closest to s if it is close enough to be a
// plausible typo, else "".
func suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(s) <= 4 {
		limit = 1
	}
	if bestD <= limit || (best != "" && (strings.HasPrefix(best, s) || strings.HasPrefix(s, best)) && len(s) >= 3) {
		return best
	}
	return ""
}

// editDistance is the Levenshtein distance, counting a transposition of two
// neighbours as one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
