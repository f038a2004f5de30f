// Package cli implements the mailkey command line: one file per subcommand.
// It is the only package that words errors and hints for people.
package cli
