//go:build race

package proxy_test

// raceEnabled: the race detector inflates memory, so memory budgets are not
// checked under it.
const raceEnabled = true
