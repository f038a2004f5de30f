package checktest

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

func TestMain(m *testing.M) { os.Exit(mailkeytest.Main(m)) }

// newLeaks returns the leak check of one test, which must have seen an access token.
func newLeaks(t *testing.T) *mailkeytest.Leaks {
	l := mailkeytest.NewLeaks(t)
	l.Require("access token", 1)
	return l
}

// startCheck starts a stack with opts for a test that runs in parallel, and a mailkey user
// on it (newMailkey).
func startCheck(t *testing.T, opts ...e2e.Option) (*e2e.Stack, context.Context, *mk) {
	t.Helper()
	t.Parallel()
	s := e2e.Start(t, opts...)
	return s, mailkeytest.Context(t), newMailkey(t, newLeaks(t))
}

// mk is one mailkey user, with the commands only these tests need.
type mk struct{ *mailkeytest.Env }

// newMailkey prepares a user with a one-second refresh margin: a stored token is used until
// it expires, as in the field.
func newMailkey(t *testing.T, l *mailkeytest.Leaks) *mk {
	t.Helper()
	return &mk{mailkeytest.New(t, l, mailkeytest.RefreshMargin("1s"))}
}

// on returns m reporting to t, for use in a subtest.
func (m *mk) on(t *testing.T) *mk { return &mk{m.On(t)} }

// add adds a generic-provider account on the stack for the public client; servers and extra
// flags are appended as given (--imap URL …, --ca-file …, --scope …).
func (m *mk) add(ctx context.Context, s *e2e.Stack, name, email string, args ...string) {
	m.T.Helper()
	m.Add(ctx, s, name, e2e.ClientPublic, email, args...)
}

// login imports a refresh token for user, minted with scopes (the defaults unless told),
// and returns the access token mailkey then hands out.
func (m *mk) login(ctx context.Context, s *e2e.Stack, name, user, password string, scopes ...string) string {
	m.T.Helper()
	m.Import(ctx, s, name, user, password, scopes...)
	return m.Token(ctx, name)
}

// report is mailkey test --json.
type report struct {
	Account string `json:"account"`
	Passed  bool   `json:"passed"`
	Results []struct {
		Protocol string `json:"protocol"`
		Server   string `json:"server"`
		Passed   bool   `json:"passed"`
		Steps    []step `json:"steps"`
	} `json:"protocols"`
}

type step struct {
	Name      string   `json:"name"`
	Status    string   `json:"status"`
	Detail    string   `json:"detail"`
	Duration  *float64 `json:"duration_ms"`
	Diagnosis *struct {
		ID    string `json:"id"`
		Cause string `json:"cause"`
		Fix   string `json:"fix"`
	} `json:"diagnosis"`
}

// test runs mailkey test --json with args and decodes the report.
func (m *mk) test(ctx context.Context, args ...string) (report, mailkeytest.Result) {
	m.T.Helper()
	r := m.Run(ctx, "", append([]string{"test", "--json"}, args...)...)
	var rep report
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		m.T.Fatalf("mailkey test --json: %v\n%s", err, r)
	}
	return rep, r
}

// diagnosis returns the step whose diagnosis the test looks at: the first failed step, else
// the first warning.
func (rep report) diagnosed(proto string) *step {
	for _, res := range rep.Results {
		if res.Protocol != proto {
			continue
		}
		for _, status := range []string{"fail", "warn"} {
			for i := range res.Steps {
				if res.Steps[i].Status == status && res.Steps[i].Diagnosis != nil {
					return &res.Steps[i]
				}
			}
		}
	}
	return nil
}

// wantDiagnosis checks that proto's checklist stopped (or warned) at stepName with diagnosis id.
func wantDiagnosis(t *testing.T, rep report, r mailkeytest.Result, proto, stepName, id string) {
	t.Helper()
	s := rep.diagnosed(proto)
	if s == nil {
		t.Fatalf("%s: no diagnosis in the report\n%s", proto, r)
	}
	if s.Name != stepName || s.Diagnosis.ID != id {
		t.Fatalf("%s: diagnosis %q at step %q, want %q at %q\n%s", proto, s.Diagnosis.ID, s.Name, id, stepName, r)
	}
	t.Logf("%s %s: %s\n  cause: %s\n  fix: %s", proto, s.Name, s.Detail, s.Diagnosis.Cause, s.Diagnosis.Fix)
}
