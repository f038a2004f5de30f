// Command linked is mailkey with nothing to do: it links every package mailkey links, so the
// runtime starts and every package initialises as in mailkey, and then it returns at once
// (unless its first argument is --run-mailkey, which keeps mailkey's code reachable and the
// binary as large as mailkey's). go run ./bench times it beside mailkey token: the difference
// between the two is what mailkey's own work costs, and what this one costs beyond a Go
// hello-world is the price of the link set.
package main

import (
	"os"

	"github.com/mailkey/mailkey/internal/cli"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "--run-mailkey" {
		os.Exit(cli.Main(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
}
