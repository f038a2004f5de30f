package store

// beforeRename, when set by a test, runs after a new record has been
// written and synced but before it takes the place of the old one. An
// error aborts the write as a crash would, minus the leftover temp file.
var beforeRename func() error

// waitingForWrites, when set by a test, runs when a reader has found
// leftovers of a write and is about to wait for the write lock.
var waitingForWrites func()

// afterStage, when set by a test, runs when Put has staged the new record
// (written and synced to its locked temp file) and is about to take the
// write lock.
var afterStage func()
