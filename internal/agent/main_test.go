package agent

import (
	"os"
	"testing"
	"time"
)

// TestMain lifts the per-connection bounds: on a machine starved of CPU a
// dial or a request can take longer than a person would wait, and no test
// here is about those bounds.
func TestMain(m *testing.M) {
	dialTimeout, requestTimeout = 10*time.Minute, 10*time.Minute
	os.Exit(m.Run())
}
