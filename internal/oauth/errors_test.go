package oauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestRefreshKeepsOldRefreshTokenWhenNoneReturned(t *testing.T) {
	p := newProvider(t)
	before := time.Now()
	tok, err := p.client().Refresh(context.Background(), "rt-old-value")
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken != "rt-old-value" || tok.AccessToken == "" {
		t.Errorf("token = %+v", tok.Token)
	}
	if p.tokenForm.Get("scope") != "https://mail.example/ offline_access" || p.tokenForm.Get("grant_type") != "refresh_token" {
		t.Errorf("refresh request = %v", p.tokenForm)
	}
	// The fake provider's expires_in (3599 s), counted from when the answer came: however
	// slow the machine, that is within the call.
	if born := tok.Expiry.Add(-3599 * time.Second); born.Before(before) || born.After(after) {
		t.Errorf("expiry %v not from expires_in (the refresh ran from %v to %v)", tok.Expiry, before, after)
	}
	if strings.Join(tok.Scopes, " ") != "https://mail.example/ offline_access" {
		t.Errorf("scopes = %v, want the requested ones when the response names none", tok.Scopes)
	}
}

func TestRefreshTakesRotatedRefreshToken(t *testing.T) {
	p := newProvider(t)
	p.rotate = true
	tok, err := p.client().Refresh(context.Background(), "rt-old-value")
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "rt-old-value" || !strings.HasPrefix(tok.RefreshToken, "rt-") {
		t.Errorf("refresh token = %q, want the rotated one", tok.RefreshToken)
	}
}

func TestRefreshWithBasicAuth(t *testing.T) {
	p := newProvider(t)
	c := p.client()
	c.Config.Endpoint.AuthStyle = 2 // oauth2.AuthStyleInHeader
	if _, err := c.Refresh(context.Background(), "rt-old-value"); err != nil {
		t.Fatal(err)
	}
	if p.tokenForm.Get("client_secret") != "" {
		t.Error("secret sent in the body as well as the header")
	}
}

func TestClassifyTable(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		header     http.Header
		body       string
		kind       Kind
		code       string
		retryAfter time.Duration
		aadsts     string
		is         error
	}{
		{name: "invalid_grant", status: 400, body: `{"error":"invalid_grant","error_description":"Token has been expired or revoked."}`, kind: Permanent, code: "invalid_grant"},
		{name: "invalid_client", status: 401, body: `{"error":"invalid_client"}`, kind: Permanent, code: "invalid_client"},
		{name: "unauthorized_client", status: 400, body: `{"error":"unauthorized_client"}`, kind: Permanent, code: "unauthorized_client"},
		{name: "invalid_scope", status: 400, body: `{"error":"invalid_scope"}`, kind: Permanent, code: "invalid_scope"},
		{name: "access_denied", status: 400, body: `{"error":"access_denied"}`, kind: Permanent, code: "access_denied", is: ErrAccessDenied},
		{name: "500 html", status: 500, body: `<html>oops</html>`, kind: Transient},
		{name: "502 empty", status: 502, kind: Transient},
		{name: "server_error", status: 400, body: `{"error":"server_error"}`, kind: Transient, code: "server_error"},
		{name: "temporarily_unavailable", status: 503, header: http.Header{"Retry-After": {"30"}}, body: `{"error":"temporarily_unavailable"}`, kind: Transient, code: "temporarily_unavailable", retryAfter: 30 * time.Second},
		{name: "429 retry-after", status: 429, header: http.Header{"Retry-After": {"120"}}, kind: Transient, retryAfter: 2 * time.Minute},
		{name: "404 no code", status: 404, body: "not found", kind: Permanent},
		{name: "AADSTS in description", status: 400, body: `{"error":"invalid_grant","error_description":"AADSTS70043: The refresh token has expired or is invalid due to sign-in frequency checks by conditional access.\r\nTrace ID: abc\r\nCorrelation ID: def","error_codes":[70043]}`, kind: Permanent, code: "invalid_grant", aadsts: "AADSTS70043"},
		{name: "AADSTS from error_codes", status: 400, body: `{"error":"invalid_client","error_description":"","error_codes":[7000222]}`, kind: Permanent, code: "invalid_client", aadsts: "AADSTS7000222"},
		{name: "error with 200", status: 200, body: `{"error":"invalid_grant"}`, kind: Permanent, code: "invalid_grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t)
			p.tokenStatus, p.tokenBody, p.tokenHeader = tc.status, tc.body, tc.header
			_, err := p.client().Refresh(context.Background(), "rt-secret-value")
			e := Classify(err)
			if e == nil {
				t.Fatal("no error")
			}
			if e.Kind != tc.kind || e.Code != tc.code || e.RetryAfter != tc.retryAfter || e.AADSTS != tc.aadsts {
				t.Errorf("got kind=%v code=%q retry=%v aadsts=%q; want %v %q %v %q (%v)", e.Kind, e.Code, e.RetryAfter, e.AADSTS, tc.kind, tc.code, tc.retryAfter, tc.aadsts, err)
			}
			if tc.status != 200 && e.Status != tc.status {
				t.Errorf("status = %d", e.Status)
			}
			if e.Permanent() != (tc.kind == Permanent) || e.Temporary() != (tc.kind == Transient) {
				t.Error("Permanent/Temporary disagree with Kind")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v) false", tc.is)
			}
			if strings.Contains(err.Error(), "oops") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error text %q holds the body or a newline", err)
			}
			if !strings.HasPrefix(err.Error(), "refresh: ") {
				t.Errorf("error text %q does not name the operation", err)
			}
		})
	}
}

func TestClassifyConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newProvider(t).client()
	c.Config.Endpoint.TokenURL = "http://" + addr + "/token"
	_, err = c.Refresh(context.Background(), "rt-secret-value")
	if e := Classify(err); !e.Temporary() {
		t.Fatalf("connection refused classified %+v (%v)", e, err)
	}
}

func TestClassifyOtherErrors(t *testing.T) {
	if Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
	if k := Classify(context.Canceled).Kind; k != Other {
		t.Errorf("canceled: %v", k)
	}
	if k := Classify(fmt.Errorf("x: %w", context.DeadlineExceeded)).Kind; k != Transient {
		t.Errorf("deadline: %v", k)
	}
	if k := Classify(&url.Error{Op: "Post", URL: "https://x/token?a=b", Err: errors.New("eof")}).Kind; k != Transient {
		t.Errorf("url.Error: %v", k)
	}
	e := &Error{Op: "refresh", Kind: Permanent, Code: "invalid_grant"}
	if Classify(fmt.Errorf("wrapped: %w", e)) != e {
		t.Error("Classify does not return a wrapped *Error")
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if d := retryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now); d != 90*time.Second {
		t.Errorf("http-date: %v", d)
	}
	for _, v := range []string{"", "-5", "soon", now.Add(-time.Hour).Format(http.TimeFormat)} {
		if d := retryAfter(v, now); d != 0 {
			t.Errorf("retryAfter(%q) = %v", v, d)
		}
	}
	if d := retryAfter("99999999999", now); d != 24*time.Hour {
		t.Errorf("huge value not bounded: %v", d)
	}
}
