package server

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const alertRules = "../../docs/monitoring/mailkey-alerts.yml"

// Prometheus' own checker accepts the sample alerting rules: YAML, PromQL and templates.
// install-deps.sh installs it; the end-to-end run (MAILKEY_E2E=1) requires it.
func TestAlertRulesPassPromtool(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		if os.Getenv("MAILKEY_E2E") == "1" {
			t.Fatalf("MAILKEY_E2E=1 but promtool is not installed (bash test/e2e/install-deps.sh installs it): %v", err)
		}
		t.Skip("promtool is not installed")
	}
	out, err := exec.Command("promtool", "check", "rules", alertRules).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// The sample alerting rules in docs/monitoring name only metrics that serve exports, with the
// labels they have, so that the rules keep working as written.
func TestAlertRulesUseExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics()
	labels := map[string][]string{}
	for _, c := range []*counterVec{m.dials, m.logins, m.forced, m.refreshes} {
		labels[c.name] = c.labels
	}
	for _, pm := range proxyMetrics {
		labels[pm.name] = []string{"protocol"}
	}
	for _, g := range accountGauges {
		labels[g.name] = []string{"account"}
	}
	labels["mailkey_app_password_hashes_total"] = nil

	uses := regexp.MustCompile(`(mailkey_[a-z_]+)(\{[^}]*\})?`).FindAllStringSubmatch(string(b), -1)
	if len(uses) < 5 {
		t.Fatalf("only %d metric uses found in the rules", len(uses))
	}
	for _, u := range uses {
		name, sel := u[1], u[2]
		have, ok := labels[name]
		if !ok {
			t.Errorf("the rules use %s, which serve does not export", name)
			continue
		}
		for _, kv := range regexp.MustCompile(`([a-z_]+)\s*=~?`).FindAllStringSubmatch(sel, -1) {
			if !slices.Contains(have, kv[1]) {
				t.Errorf("the rules select %s by label %s; it has %v", name, kv[1], have)
			}
		}
	}
	// by (…) clauses name labels of the metric they aggregate.
	for _, by := range regexp.MustCompile(`by \(([a-z_, ]+)\) \(increase\((mailkey_[a-z_]+)`).FindAllStringSubmatch(string(b), -1) {
		for _, l := range strings.Split(by[1], ",") {
			if l = strings.TrimSpace(l); !slices.Contains(labels[by[2]], l) {
				t.Errorf("the rules aggregate %s by %s; it has %v", by[2], l, labels[by[2]])
			}
		}
	}
	// Results the rules match are results the refresher reports.
	if !strings.Contains(m.refreshes.help, "transient") || !strings.Contains(m.refreshes.help, "client") {
		t.Errorf("refresh results changed: %s", m.refreshes.help)
	}
}
