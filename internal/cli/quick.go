package cli

import (
	"reflect"
	"slices"
	"strings"
	"time"
)

// quick parses the command lines that mail clients run for every connection, mailkey token
// ACCOUNT with its usual flags, and mailkey version, without kong, and returns the command
// to run; for any other command line it returns nil and kong parses it. Building kong's model
// of even one command and parsing with it cost the credential helper about 25 page faults,
// 5 % of the process (see docs/benchmarks.md). quick accepts only what kong gives the same
// values for, and leaves everything kong would refuse, or print help or usage for, to kong;
// TestQuickMatchesKong holds the two to the same results.
func quick(args []string) interface{ Run(*env) error } {
	switch {
	case len(args) == 1 && args[0] == "version":
		return versionCmd{}
	case len(args) > 1 && args[0] == "token":
		if c := quickToken(args[1:]); c != nil {
			return c
		}
	}
	return nil
}

// tokenDefaults returns tokenCmd's --wait default and --sasl's values, read from its tags so
// that quick and kong cannot disagree about them.
func tokenDefaults() (wait time.Duration, sasl []string) {
	t := reflect.TypeFor[tokenCmd]()
	f, _ := t.FieldByName("Wait")
	wait, err := time.ParseDuration(f.Tag.Get("default"))
	if err != nil {
		panic("tokenCmd.Wait: default: " + err.Error())
	}
	f, _ = t.FieldByName("SASL")
	return wait, strings.Split(f.Tag.Get("enum"), ",")
}

// quickToken parses mailkey token's arguments: one account that does not start with '-', and
// at most once each --json, --sasl=M or --sasl M (M one of its values, not empty), --wait=D or
// --wait D (a duration Go parses), in any order. Anything else is nil: kong parses it.
func quickToken(args []string) *tokenCmd {
	wait, mechs := tokenDefaults()
	c := &tokenCmd{Wait: wait}
	var seen []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			if a == "" || c.Account != "" {
				return nil
			}
			c.Account = a
			continue
		}
		name, value, hasValue := strings.Cut(a, "=")
		if slices.Contains(seen, name) {
			return nil
		}
		seen = append(seen, name)
		if name == "--json" {
			if hasValue {
				return nil
			}
			c.JSON = true
			continue
		}
		if name != "--sasl" && name != "--wait" {
			return nil
		}
		if !hasValue {
			if i+1 == len(args) || strings.HasPrefix(args[i+1], "-") {
				return nil
			}
			i++
			value = args[i]
		}
		switch name {
		case "--sasl":
			if value == "" || !slices.Contains(mechs, value) {
				return nil
			}
			c.SASL = value
		case "--wait":
			d, err := time.ParseDuration(value)
			if err != nil {
				return nil
			}
			c.Wait = d
		}
	}
	if c.Account == "" {
		return nil
	}
	return c
}
