package tokens

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

// errDiscovery is how a source fails that cannot be made while the
// provider is down: its endpoints come from its discovery document.
var errDiscovery = errors.New("discovery: cannot fetch http://127.0.0.1:1/.well-known/openid-configuration: connect: connection refused")

// TestSourceFailureKeepsValidToken pins a provider outage that stopped
// mailkey token although a valid token was stored: the source (which needs
// the provider's discovery) failed before the "use the current token
// while it lasts" path ran.
func TestSourceFailureKeepsValidToken(t *testing.T) {
	for _, tc := range []struct {
		name      string
		expiresIn time.Duration
		call      func(m *Manager) error
		wantOld   bool
	}{
		{"Get, valid inside the margin", 2 * time.Minute, func(m *Manager) error {
			_, err := m.Get(context.Background(), "work")
			return err
		}, true},
		{"Get, expired", -time.Minute, func(m *Manager) error {
			_, err := m.Get(context.Background(), "work")
			return err
		}, false},
		{"RefreshDue reports the failure", 2 * time.Minute, func(m *Manager) error {
			_, err := m.RefreshDue(context.Background(), "work", 10*time.Minute)
			return err
		}, false},
		{"ForceRefresh never hands back the rejected token", 2 * time.Minute, func(m *Manager) error {
			_, err := m.ForceRefresh(context.Background(), "work", oldAT)
			return err
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, record(tc.expiresIn), rotating, nil)
			old := e.st.rec("work")
			asked := 0
			m := New(e.st, func(string) (Source, error) {
				asked++
				return nil, errDiscovery
			}, &Options{Now: e.clk.Now, Sleep: e.sl.Sleep, Logger: slog.New(slog.NewTextHandler(e.logs, nil))})
			err := tc.call(m)
			if asked != 1 {
				t.Errorf("source made %d times, want 1", asked)
			}
			if tc.wantOld {
				if err != nil {
					t.Fatalf("a valid token is stored, yet: %v", err)
				}
				if !strings.Contains(e.logs.String(), "using the current token while it lasts") {
					t.Errorf("no warning that the current token is used; log:\n%s", e.logs)
				}
			} else if !errors.Is(err, errDiscovery) {
				t.Errorf("err = %v, want the source's error", err)
			}
			if !reflect.DeepEqual(e.st.rec("work"), old) {
				t.Errorf("stored record changed")
			}
			if strings.Contains(e.logs.String(), oldAT) || strings.Contains(e.logs.String(), oldRT) {
				t.Errorf("log holds a token:\n%s", e.logs)
			}
		})
	}
}
