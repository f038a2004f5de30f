package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/mailkey/mailkey/internal/audit"
)

type auditCmd struct {
	Account string `arg:"" optional:"" help:"Show only the events of this account."`
	Since   string `placeholder:"DURATION|TIME" help:"Show only events since this long ago (24h, 90m) or since this time (2026-03-01, 2026-03-01T09:00:00Z)."`
	JSON    bool   `help:"Print the events as a JSON array."`
}

func (c *auditCmd) Run(e *env) error {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	since, err := parseSince(c.Since, time.Now())
	if err != nil {
		return err
	}
	if cfg.AuditFile == "" {
		return errorf("add audit_file = \"audit.jsonl\" at the top of "+cfg.File+", then restart mailkey serve",
			"no audit file is configured: audit events go to mailkey serve's log only")
	}
	events, skipped, err := audit.Read(cfg.AuditFile, audit.Filter{Account: c.Account, Since: since})
	if errors.Is(err, fs.ErrNotExist) {
		e.notef("%s does not exist yet: no event has been recorded", cfg.AuditFile)
		err = nil
	}
	if err != nil {
		return errorf("check the permissions of "+cfg.AuditFile, "cannot read the audit file: %v", err)
	}
	if skipped > 0 {
		e.warnf("%d line(s) of %s are not audit events and were skipped", skipped, cfg.AuditFile)
	}
	if c.JSON {
		if events == nil {
			events = []audit.Event{}
		}
		return e.writeJSON(events)
	}
	for _, ev := range events {
		fmt.Fprintln(e.stdout, auditLine(ev))
	}
	return nil
}

// auditLine is one event in words, on one line.
func auditLine(ev audit.Event) string {
	parts := []string{ev.Time.Local().Format(time.DateTime), ev.Event}
	if ev.Account != "" {
		parts = append(parts, ev.Account)
	}
	for _, kv := range [][2]string{{"login", ev.Login}, {"label", ev.Label}, {"source", ev.Source}, {"protocol", ev.Protocol}, {"by", ev.Process}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	line := strings.Join(parts, "  ")
	if ev.Detail != "" {
		line += "  " + ev.Detail
	}
	return line
}

// parseSince reads --since: a duration back from now, an RFC 3339 time, a
// local date and time, or a local date.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{time.DateTime, "2006-01-02T15:04:05", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errorf("write --since 24h, --since 2026-03-01 or --since 2026-03-01T09:00:00Z",
		"--since %q is neither a duration nor a time", s)
}
