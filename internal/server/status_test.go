package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/store"
)

type oneRecord struct{ rec *store.Record }

func (o oneRecord) Get(context.Context, string) (*store.Record, error) { return o.rec, nil }

// TestTokenStateClientMark: the status page says "needs login" for a dead
// grant only, not for a mark an older version left after a client error.
func TestTokenStateClientMark(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		reason string
		want   string
	}{
		{"invalid_grant: grant request is invalid", "needs login"},
		{"invalid_client: client authentication failed", "valid until"},
	} {
		rec := &store.Record{Account: "work", AccessToken: "at", Expiry: now.Add(time.Hour), NeedsLogin: true, Reason: tc.reason}
		s := &Server{cfg: Config{Store: oneRecord{rec}}}
		if got := s.tokenState(context.Background(), "work", false, now); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: state %q, want %q…", tc.reason, got, tc.want)
		}
	}
}
