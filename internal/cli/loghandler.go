package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// daemonLogger is the log of a long-running command (serve, agent): one
// line per event on w, as text or JSON (format), from level ("debug",
// "info", "warn" or "error"; config.LogLevels) on. Debug lines, like all
// others, never hold a secret.
func daemonLogger(w io.Writer, format, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// lineHandler prints slog records as "mailkey: warning: msg key=value" on
// stderr, for commands that are not daemons. The packages that log never
// put secrets in attributes.
type lineHandler struct {
	e     *env
	level slog.Level
	attrs []slog.Attr
}

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	if r.Level >= slog.LevelError {
		fmt.Fprintf(h.e.stderr, "mailkey: error: %s\n", b.String())
	} else {
		fmt.Fprintf(h.e.stderr, "mailkey: warning: %s\n", b.String())
	}
	return nil
}

func (h *lineHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &lineHandler{e: h.e, level: h.level, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h *lineHandler) WithGroup(string) slog.Handler { return h }
