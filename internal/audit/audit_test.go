package audit

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Many writers appending at once, each with its own open file as separate
// processes have, never tear or interleave a line.
func TestConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	const writers, each = 8, 200
	long := strings.Repeat("ü", 3000) // clipped to stay within one atomic write
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			l := New(path, "serve", nil)
			for i := range each {
				l.Record(Event{Event: AppPasswordUsed, Account: "work", Label: "scanner", Source: "127.0.0.1:4000", Detail: long[:w+i]})
			}
		})
	}
	wg.Wait()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	if len(lines) != writers*each {
		t.Fatalf("%d lines, want %d", len(lines), writers*each)
	}
	for i, line := range lines {
		if len(line)+1 > lineLimit {
			t.Errorf("line %d is %d bytes, over %d", i, len(line)+1, lineLimit)
		}
		var e Event
		if err := json.Unmarshal(line, &e); err != nil || e.Event != AppPasswordUsed {
			t.Fatalf("line %d is not an event (%v): %.80q", i, err, line)
		}
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("audit file mode %#o, want 0600", fi.Mode().Perm())
		}
	}
}

// Read selects by account and time, and skips what is not an event.
func TestRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := New(path, "serve", nil)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	l.Record(Event{Time: t0, Event: Login, Account: "work"})
	l.Record(Event{Time: t0.Add(time.Hour), Event: Login, Account: "home"})
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"time":"2026-03-01T11:00:00Z","event":"log` + "\n") // torn by a crash
	f.Close()
	l.Record(Event{Time: t0.Add(2 * time.Hour), Event: Logout, Account: "work"})

	got, skipped, err := Read(path, Filter{Account: "work"})
	if err != nil || skipped != 1 || len(got) != 2 || got[0].Event != Login || got[1].Event != Logout {
		t.Errorf("Read(work) = %+v, %d skipped, %v", got, skipped, err)
	}
	got, _, _ = Read(path, Filter{Since: t0.Add(30 * time.Minute)})
	if len(got) != 2 || got[0].Account != "home" || got[1].Event != Logout {
		t.Errorf("Read(since) = %+v", got)
	}
	if got[0].Process != "serve" || got[0].PID != os.Getpid() {
		t.Errorf("process %q pid %d", got[0].Process, got[0].PID)
	}
}

// An event reaches the log too; a file that cannot be written is said once.
func TestRecordLogs(t *testing.T) {
	var buf bytes.Buffer
	l := New(filepath.Join(t.TempDir(), "missing", "audit.jsonl"), "serve", slog.New(slog.NewTextHandler(&buf, nil)))
	l.Record(Event{Event: AppPasswordFailed, Login: "work", Source: "127.0.0.1:5000", Protocol: "imap"})
	l.Record(Event{Event: AppPasswordFailed, Login: "work", Source: "127.0.0.1:5001", Protocol: "imap"})
	out := buf.String()
	if !strings.Contains(out, `msg=audit event=app-password-failed login=work source=127.0.0.1:5000 protocol=imap`) {
		t.Errorf("log lacks the event:\n%s", out)
	}
	if n := strings.Count(out, "audit file cannot be written"); n != 1 {
		t.Errorf("write failure said %d times, want once:\n%s", n, out)
	}
}

// A file that others can read is still appended to, and said so once.
func TestOpenFileWarned(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no mode bits on Windows")
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	l := New(path, "serve", slog.New(slog.NewTextHandler(&buf, nil)))
	l.Record(Event{Event: Login, Account: "work"})
	l.Record(Event{Event: Logout, Account: "work"})
	if n := strings.Count(buf.String(), "run chmod 600"); n != 1 {
		t.Errorf("too open a file said %d times, want once:\n%s", n, buf.String())
	}
	if events, _, err := Read(path, Filter{}); err != nil || len(events) != 2 {
		t.Errorf("Read = %d events, %v", len(events), err)
	}
}
