package proxy

import (
	"fmt"
	"testing"
	"time"
)

func TestFailureLimiter(t *testing.T) {
	now := time.Unix(1700000000, 0)
	l := newFailureLimiter(3, time.Minute)
	l.now = func() time.Time { return now }

	for i := range 3 {
		if !l.Allowed("10.0.0.1") {
			t.Fatalf("refused after %d failures, want 3 allowed", i)
		}
		l.Failed("10.0.0.1")
	}
	if l.Allowed("10.0.0.1") {
		t.Fatal("allowed after 3 failures in a minute")
	}
	if !l.Allowed("10.0.0.2") {
		t.Fatal("another address refused")
	}
	now = now.Add(20 * time.Second) // one token back
	if !l.Allowed("10.0.0.1") {
		t.Fatal("still refused after a third of the window")
	}
	l.Failed("10.0.0.1")
	if l.Allowed("10.0.0.1") {
		t.Fatal("allowed right after spending the refilled token")
	}
	now = now.Add(time.Hour)
	for range 3 {
		if !l.Allowed("10.0.0.1") {
			t.Fatal("refused after the window passed")
		}
		l.Failed("10.0.0.1")
	}
}

func TestFailureLimiterBounded(t *testing.T) {
	l := newFailureLimiter(3, time.Minute)
	for i := range 3 * maxLimiterEntries {
		l.Failed(fmt.Sprint(i))
	}
	if n := len(l.buckets); n > maxLimiterEntries {
		t.Fatalf("%d entries, want at most %d", n, maxLimiterEntries)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		auth bool
		msg  string
	}{
		{ErrBadCredentials, true, "Authentication failed"},
		{ErrRateLimited, false, "Too many failed logins, try again later"},
		{fmt.Errorf("x: %w", ErrUpstreamAuth), true, "Upstream server refused the account's authorization"},
		{&UpstreamError{Message: "Grant expired,\r\nrun [mailkey login]", Err: ErrUpstreamAuth}, true, "Grant expired,  run mailkey login"},
		{&UpstreamError{Message: "\r\n"}, false, "Mail server temporarily unavailable, try again later"},
		{fmt.Errorf("dial: refused"), false, "Mail server temporarily unavailable, try again later"},
	}
	for _, tt := range tests {
		f := Classify(tt.err)
		if f.Auth != tt.auth || f.Message != tt.msg {
			t.Errorf("Classify(%v) = %+v, want %v %q", tt.err, f, tt.auth, tt.msg)
		}
	}
}
