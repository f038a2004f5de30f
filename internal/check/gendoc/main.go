// Command gendoc writes docs/troubleshooting.md from the diagnosis table
// of package check. It runs from go generate in internal/check.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/mailkey/mailkey/internal/check"
)

func main() {
	out := flag.String("o", "", "the file to write (default: standard output)")
	flag.Parse()
	doc := check.Markdown()
	if *out == "" {
		os.Stdout.Write(doc)
		return
	}
	if err := os.WriteFile(*out, doc, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}
