package store

import (
	"fmt"
	"log/slog"
)

// redacted stands in for a secret in printed records.
const redacted = "[redacted]"

// Redacted returns a copy of r with the access and refresh tokens replaced
// by "[redacted]" (empty ones stay empty, so the copy still says which
// tokens exist). It is safe to print or log.
func (r Record) Redacted() Record {
	if r.AccessToken != "" {
		r.AccessToken = redacted
	}
	if r.RefreshToken != "" {
		r.RefreshToken = redacted
	}
	r.Scopes = append([]string(nil), r.Scopes...)
	return r
}

// String prints the record without its tokens, so that a stray %v does
// not leak them.
func (r Record) String() string {
	type plain Record // no String method: no recursion
	return fmt.Sprintf("%+v", plain(r.Redacted()))
}

// GoString is String for %#v.
func (r Record) GoString() string { return r.String() }

// LogValue keeps the tokens out of log/slog output.
func (r Record) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("account", r.Account),
		slog.Bool("access_token", r.AccessToken != ""),
		slog.Time("expiry", r.Expiry),
		slog.Bool("refresh_token", r.RefreshToken != ""),
		slog.Bool("needs_login", r.NeedsLogin),
	)
}
