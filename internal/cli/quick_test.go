package cli

import (
	"reflect"
	"strings"
	"testing"
)

// TestQuickMatchesKong runs command lines through quick and through kong: whenever quick
// takes a line, kong must select the same command with the same values. The lines are every
// sequence of up to three words from a vocabulary of accounts, flags and values, so that
// orders, repeats, missing values and values that look like flags are all tried, and longer
// lines that give every flag.
func TestQuickMatchesKong(t *testing.T) {
	words := []string{"work", "other", "-x", "--json", "--json=false", "--sasl", "--sasl=xoauth2",
		"--sasl=oauthbearer", "--sasl=", "--sasl=bad", "xoauth2", "oauthbearer", "--wait", "--wait=5s", "--wait=0",
		"--wait=5", "--wait=-5s", "--wait=1h30m", "--sasl=XOAUTH2", "2m", "-5s", "--", "-h", "--help", "-", "--waits=1s"}
	lines := [][]string{{"version"}, {"version", "extra"}, {"version", "--help"}, {"token"}, {"tokens", "work"},
		strings.Fields("token work --json --sasl oauthbearer --wait 2m"),
		strings.Fields("token --wait=1s --sasl=xoauth2 --json work"),
		strings.Fields("token --sasl xoauth2 work --wait 0 --json"),
		strings.Fields("token --json --json work --wait 1s"),
		strings.Fields("token work --sasl xoauth2 --wait 1s --sasl oauthbearer")}
	var grow func(prefix []string, n int)
	grow = func(prefix []string, n int) {
		lines = append(lines, append([]string{"token"}, prefix...))
		if n == 0 {
			return
		}
		for _, w := range words {
			grow(append(prefix[:len(prefix):len(prefix)], w), n-1)
		}
	}
	grow(nil, 3)
	took := 0
	for _, args := range lines {
		cmd := quick(args)
		if cmd == nil {
			continue
		}
		took++
		g := new(commands)
		kctx, code, err := parse(g, args, &strings.Builder{}, &strings.Builder{})
		if err != nil || code >= 0 {
			t.Errorf("mailkey %s: quick took it, kong: exit %d, error %v", strings.Join(args, " "), code, err)
			continue
		}
		var want any
		switch kctx.Command() {
		case "version":
			want = versionCmd{}
		case "token <account>":
			want = &g.Token
		default:
			t.Errorf("mailkey %s: quick took it, kong selected %q", strings.Join(args, " "), kctx.Command())
			continue
		}
		if !reflect.DeepEqual(cmd, want) {
			t.Errorf("mailkey %s:\n quick %+v\n kong  %+v", strings.Join(args, " "), cmd, want)
		}
	}
	// The lines mail clients run must not need kong.
	for _, line := range []string{"token work", "token work --json", "token work --sasl xoauth2", "token --sasl=oauthbearer work --wait 2m", "version"} {
		if quick(strings.Fields(line)) == nil {
			t.Errorf("mailkey %s: quick left it to kong", line)
		}
	}
	if took < 200 {
		t.Errorf("quick took only %d of %d lines", took, len(lines))
	}
}
