//go:build !unix

package store

// runHelper: the cross-process tests need SIGKILL and flock; they run on
// Unix only.
func runHelper(string) int { return 2 }
