package store

import "crypto/rand"

// beforeRename, when set by a test, runs after a new record has been
// written and synced but before it takes the place of the old one. An
// error aborts the write as a crash would, minus the leftover temp file.
var beforeRename func() error

// randomSuffix names a temp file where os.CreateTemp cannot be used.
func randomSuffix() string { return rand.Text()[:12] }
