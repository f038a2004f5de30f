// Command mailkey gives mail clients OAuth 2.0 access to IMAP, POP3 and SMTP.
package main

import (
	"os"

	"github.com/mailkey/mailkey/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
