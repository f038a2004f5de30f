package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// jsonDoc is the page that documents every --json output.
const jsonDoc = "../../docs/json.md"

// jsonShapeCmd is the story command "jsonshape HEADING FILE": the JSON document in FILE
// (stdout for the last command's output) has only fields that the examples under the
// heading "## HEADING" of docs/json.md show, each of the type they show, with times
// in RFC 3339.
func jsonShapeCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: jsonshape HEADING FILE")
	}
	page, err := os.ReadFile(jsonDoc)
	ts.Check(err)
	documented, err := documentedShape(string(page), args[0])
	ts.Check(err)
	var actual any
	if err := json.Unmarshal([]byte(ts.ReadFile(args[1])), &actual); err != nil {
		ts.Fatalf("%s is not JSON: %v", args[1], err)
	}
	if problems := checkShape("", documented, actual); len(problems) > 0 {
		ts.Fatalf("%s, against docs/json.md %q:\n%s", args[1], args[0], strings.Join(problems, "\n"))
	}
}

var jsonBlock = regexp.MustCompile("(?s)```json\n(.*?)```")

// documentedShape merges the JSON examples of the section called heading into one value
// that has every field any of them shows.
func documentedShape(page, heading string) (any, error) {
	_, section, ok := strings.Cut(page, "\n## "+heading+"\n")
	if !ok {
		return nil, fmt.Errorf("docs/json.md has no section %q", heading)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var shape any
	blocks := jsonBlock.FindAllStringSubmatch(section, -1)
	if len(blocks) == 0 {
		return nil, fmt.Errorf("docs/json.md %q has no example", heading)
	}
	for _, b := range blocks {
		var v any
		if err := json.Unmarshal([]byte(b[1]), &v); err != nil {
			return nil, fmt.Errorf("docs/json.md %q: an example is not JSON: %v", heading, err)
		}
		shape = merge(shape, v)
	}
	return shape, nil
}

func merge(a, b any) any {
	switch bv := b.(type) {
	case map[string]any:
		av, ok := a.(map[string]any)
		if !ok {
			av = map[string]any{}
		}
		for k, v := range bv {
			av[k] = merge(av[k], v)
		}
		return av
	case []any:
		var elem any
		if av, ok := a.([]any); ok && len(av) > 0 {
			elem = av[0]
		}
		for _, v := range bv {
			elem = merge(elem, v)
		}
		if elem == nil {
			return []any{}
		}
		return []any{elem}
	}
	if a != nil {
		return a
	}
	return b
}

// checkShape lists where actual departs from the documented shape: a field the examples do
// not show, another type, or a time that is not RFC 3339.
func checkShape(path string, documented, actual any) []string {
	if kind(documented) != kind(actual) {
		return []string{fmt.Sprintf("%s: %s, documented as %s", name(path), kind(actual), kind(documented))}
	}
	var problems []string
	switch a := actual.(type) {
	case map[string]any:
		d := documented.(map[string]any)
		keys := make([]string, 0, len(a))
		for k := range a {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if _, ok := d[k]; !ok {
				problems = append(problems, fmt.Sprintf("%s: not documented", name(path+"."+k)))
				continue
			}
			problems = append(problems, checkShape(path+"."+k, d[k], a[k])...)
		}
	case []any:
		d := documented.([]any)
		for i, v := range a {
			if len(d) == 0 {
				problems = append(problems, fmt.Sprintf("%s: documented as always empty", name(path)))
				break
			}
			problems = append(problems, checkShape(fmt.Sprintf("%s[%d]", path, i), d[0], v)...)
		}
	case string:
		if isTime(documented.(string)) && !isTime(a) {
			problems = append(problems, fmt.Sprintf("%s: %q is not an RFC 3339 time", name(path), a))
		}
	}
	return problems
}

func isTime(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "null"
}

func name(path string) string {
	if path == "" {
		return "the document"
	}
	return strings.TrimPrefix(path, ".")
}

// TestCheckShape shows that jsonshape catches what the page must keep up with.
func TestCheckShape(t *testing.T) {
	doc := "intro\n## mailkey x --json\n```json\n{\"a\": 1, \"at\": \"2026-12-07T15:03:11Z\", \"l\": [{\"b\": true}]}\n```\n" +
		"```json\n{\"l\": [{\"c\": \"s\"}]}\n```\n## next\n```json\n{\"z\": 1}\n```\n"
	shape, err := documentedShape(doc, "mailkey x --json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		actual string
		want   []string
	}{
		{`{"a": 2, "l": [{"b": false}, {"c": "t"}], "at": "2026-01-02T03:04:05.5+01:00"}`, nil},
		{`{"a": "2"}`, []string{"a: a string, documented as a number"}},
		{`{"at": "in 5m"}`, []string{`at: "in 5m" is not an RFC 3339 time`}},
		{`{"l": [{"d": 1}], "z": 1}`, []string{"l[0].d: not documented", "z: not documented"}},
		{`[]`, []string{"the document: a list, documented as an object"}},
	} {
		var actual any
		if err := json.Unmarshal([]byte(tt.actual), &actual); err != nil {
			t.Fatal(err)
		}
		if got := checkShape("", shape, actual); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.actual, got, tt.want)
		}
	}
}
