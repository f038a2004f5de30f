package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is DeviceOptions' clock: Sleep only moves time forward.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sleeps = append(f.sleeps, d)
	f.now = f.now.Add(d)
	return ctx.Err()
}

// deviceProvider answers the device endpoint and, for the device grant, one
// scripted error code per poll ("" = issue a token).
func deviceProvider(t *testing.T, expiresIn int, script ...string) *fakeProvider {
	p := newProvider(t)
	var mu sync.Mutex
	deviceCode := p.secret("devicecode")
	p.mux.HandleFunc("/device", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"device_code": deviceCode, "user_code": "WDJB-MJHT",
			"verification_uri":          "https://example.com/device",
			"verification_uri_complete": "https://example.com/device?user_code=WDJB-MJHT",
			"expires_in":                expiresIn, "interval": 5,
		})
	})
	p.token = func(w http.ResponseWriter, form url.Values) bool {
		if form.Get("grant_type") != deviceGrantType {
			return false
		}
		if form.Get("device_code") != deviceCode || form.Get("client_id") != "client-id" {
			jsonError(w, 400, "invalid_grant", "bad device code")
			return true
		}
		mu.Lock()
		defer mu.Unlock()
		if len(script) == 0 {
			jsonError(w, 400, "authorization_pending", "")
			return true
		}
		step := script[0]
		script = script[1:]
		if step == "" {
			p.issue(w, true, map[string]any{"scope": "a b"})
		} else {
			jsonError(w, 400, step, "scripted")
		}
		return true
	}
	return p
}

func TestDeviceLoginPendingSlowDownSuccess(t *testing.T) {
	p := deviceProvider(t, 900, "authorization_pending", "slow_down", "authorization_pending", "")
	clock := &fakeClock{now: time.Now()}
	var out syncBuffer
	tok, err := p.client().DeviceLogin(context.Background(), &out, DeviceOptions{QR: true, Now: clock.Now, Sleep: clock.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || strings.Join(tok.Scopes, " ") != "a b" {
		t.Errorf("token = %v", tok)
	}
	want := []time.Duration{5 * time.Second, 5 * time.Second, 10 * time.Second, 10 * time.Second}
	if len(clock.sleeps) != len(want) {
		t.Fatalf("sleeps = %v, want %v", clock.sleeps, want)
	}
	for i := range want {
		if clock.sleeps[i] != want[i] {
			t.Fatalf("sleeps = %v, want %v (slow_down adds 5 s for good)", clock.sleeps, want)
		}
	}
	o := out.String()
	for _, s := range []string{"https://example.com/device", "WDJB-MJHT", "█", "expires in 15m0s", "...", "approved"} {
		if !strings.Contains(o, s) {
			t.Errorf("output lacks %q:\n%s", s, o)
		}
	}
	assertNoSecret(t, "output", o, p.allSecrets())
}

func TestDeviceLoginExpiresByClock(t *testing.T) {
	p := deviceProvider(t, 12)
	clock := &fakeClock{now: time.Now()}
	_, err := p.client().DeviceLogin(context.Background(), nil, DeviceOptions{Now: clock.Now, Sleep: clock.Sleep})
	if !errors.Is(err, ErrExpiredToken) || !Classify(err).Permanent() {
		t.Fatalf("err = %v, want permanent ErrExpiredToken", err)
	}
	if len(clock.sleeps) != 3 {
		t.Errorf("polled %d times in a 12 s lifetime at 5 s intervals, want 3", len(clock.sleeps))
	}
}

// TestDeviceLoginWaitShorterThanCode: with a Wait shorter than the code's
// lifetime, the login says how long it waits and, when that runs out, fails
// with ErrTimeout, not as the code's expiry or a provider failure.
func TestDeviceLoginWaitShorterThanCode(t *testing.T) {
	p := deviceProvider(t, 900)
	clock := &fakeClock{now: time.Now()}
	var out strings.Builder
	_, err := p.client().DeviceLogin(context.Background(), &out, DeviceOptions{Wait: 12 * time.Second, Now: clock.Now, Sleep: clock.Sleep})
	if !errors.Is(err, ErrTimeout) || errors.Is(err, ErrExpiredToken) || !Classify(err).Permanent() {
		t.Fatalf("err = %v, want permanent ErrTimeout", err)
	}
	if !strings.Contains(out.String(), "Waiting 12s for approval (the code itself expires in 15m0s)") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestDeviceLoginTerminalErrors(t *testing.T) {
	for code, want := range map[string]error{"expired_token": ErrExpiredToken, "access_denied": ErrAccessDenied} {
		p := deviceProvider(t, 900, "authorization_pending", code)
		clock := &fakeClock{now: time.Now()}
		_, err := p.client().DeviceLogin(context.Background(), nil, DeviceOptions{Now: clock.Now, Sleep: clock.Sleep})
		if !errors.Is(err, want) {
			t.Errorf("%s: err = %v, want %v", code, err, want)
		}
		if e := Classify(err); !e.Permanent() || e.Code != code {
			t.Errorf("%s: classified %+v", code, e)
		}
	}
}

func TestDeviceLoginBacksOffAfterServerErrors(t *testing.T) {
	p := deviceProvider(t, 900, "temporarily_unavailable", "")
	clock := &fakeClock{now: time.Now()}
	if _, err := p.client().DeviceLogin(context.Background(), nil, DeviceOptions{Now: clock.Now, Sleep: clock.Sleep}); err != nil {
		t.Fatal(err)
	}
	if len(clock.sleeps) != 2 || clock.sleeps[1] != 10*time.Second {
		t.Errorf("sleeps = %v, want [5s 10s]", clock.sleeps)
	}
}

func TestDeviceAuthorizationRefused(t *testing.T) {
	p := newProvider(t)
	p.mux.HandleFunc("/device", func(w http.ResponseWriter, r *http.Request) {
		jsonError(w, 400, "invalid_scope", "Invalid scope: https://mail.google.com/")
	})
	_, err := p.client().DeviceLogin(context.Background(), nil, DeviceOptions{})
	e := Classify(err)
	if e.Code != "invalid_scope" || !e.Permanent() {
		t.Fatalf("err = %+v", e)
	}
}

func TestWriteQR(t *testing.T) {
	var b strings.Builder
	if err := writeQR(&b, "https://example.com/device?user_code=WDJB-MJHT"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	width := len([]rune(lines[0]))
	if width < 21+2*qrQuietZone || len(lines) != (width+1)/2 {
		t.Errorf("QR is %d×%d characters", width, len(lines))
	}
	if strings.Trim(lines[0], "▀█") != "" {
		t.Errorf("top row is not the light quiet zone: %q", lines[0])
	}
}
