package cli

import (
	"testing"
	"time"
)

// --since takes a duration back from now or a time, and words what it does not read.
func TestParseSince(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                     {},
		"24h":                  now.Add(-24 * time.Hour),
		"2026-02-28T08:00:00Z": time.Date(2026, 2, 28, 8, 0, 0, 0, time.UTC),
		"2026-02-28":           time.Date(2026, 2, 28, 0, 0, 0, 0, time.Local),
		"2026-02-28 08:30:00":  time.Date(2026, 2, 28, 8, 30, 0, 0, time.Local),
	} {
		if got, err := parseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseSince("yesterday", now); err == nil || hintOf(err) == "" {
		t.Errorf("parseSince(yesterday) = %v, want an error with a hint", err)
	}
}
