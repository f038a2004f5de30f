package sasl

import (
	"errors"
	"strings"
	"testing"

	gosasl "github.com/emersion/go-sasl"
)

func TestOAuthBearerClientStart(t *testing.T) {
	tests := []struct {
		opts gosasl.OAuthBearerOptions
		want string
	}{
		{gosasl.OAuthBearerOptions{Username: "alice@example.test", Token: "tok", Host: "imap.example.test", Port: 993},
			"n,a=alice@example.test,\x01host=imap.example.test\x01port=993\x01auth=Bearer tok\x01\x01"},
		{gosasl.OAuthBearerOptions{Username: "a,b=c", Token: "tok"},
			"n,a=a=2Cb=3Dc,\x01auth=Bearer tok\x01\x01"},
		{gosasl.OAuthBearerOptions{Token: "tok"}, "n,,\x01auth=Bearer tok\x01\x01"},
	}
	for _, tt := range tests {
		mech, ir, err := NewOAuthBearerClient(&tt.opts).Start()
		if err != nil || mech != "OAUTHBEARER" || string(ir) != tt.want {
			t.Errorf("Start(%+v) = %q, %q, %v; want %q", tt.opts, mech, ir, err, tt.want)
		}
	}
}

func TestOAuthBearerClientRejects(t *testing.T) {
	tests := []struct {
		opts gosasl.OAuthBearerOptions
		want error
	}{
		{gosasl.OAuthBearerOptions{Username: "a\nb", Token: secretToken}, ErrInvalidUsername},
		{gosasl.OAuthBearerOptions{Username: "a", Token: ""}, ErrInvalidToken},
		{gosasl.OAuthBearerOptions{Username: "a", Token: secretToken + "\x01"}, ErrInvalidToken},
		{gosasl.OAuthBearerOptions{Username: "a", Token: secretToken, Host: "h\x01port=1"}, ErrInvalidHost},
		{gosasl.OAuthBearerOptions{Username: "a", Token: secretToken, Port: 70000}, ErrInvalidPort},
	}
	for _, tt := range tests {
		_, _, err := NewOAuthBearerClient(&tt.opts).Start()
		if !errors.Is(err, tt.want) {
			t.Errorf("Start = %v, want %v", err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), secretToken) {
			t.Errorf("error leaks the token: %v", err)
		}
	}
}

// Against go-sasl's own server: the failure challenge is answered with 0x01
// (RFC 7628 §3.2.3) and the server then fails with its error.
func TestOAuthBearerClientAgainstGoSASLServer(t *testing.T) {
	srv := gosasl.NewOAuthBearerServer(func(o gosasl.OAuthBearerOptions) *gosasl.OAuthBearerError {
		if o.Username == "alice@example.test" && o.Token == secretToken && o.Host == "h" && o.Port == 110 {
			return nil
		}
		return &gosasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
	})
	c := NewOAuthBearerClient(&gosasl.OAuthBearerOptions{Username: "alice@example.test", Token: secretToken, Host: "h", Port: 110})
	_, ir, _ := c.Start()
	if _, done, err := srv.Next(ir); !done || err != nil {
		t.Fatalf("valid token: %v %v", done, err)
	}

	srv = gosasl.NewOAuthBearerServer(func(gosasl.OAuthBearerOptions) *gosasl.OAuthBearerError {
		return &gosasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
	})
	_, ir, _ = c.Start()
	ch, done, err := srv.Next(ir)
	if done || err != nil {
		t.Fatalf("want a challenge, got %v %v", done, err)
	}
	resp, err := c.Next(ch)
	if err != nil || string(resp) != "\x01" {
		t.Fatalf("Next = %q, %v; want 0x01", resp, err)
	}
	if f := c.Failure(); f == nil || f.Status != "invalid_token" || f.Schemes != "bearer" {
		t.Errorf("Failure() = %+v", f)
	}
	if _, done, err := srv.Next(resp); !done || err == nil {
		t.Errorf("server should fail: %v %v", done, err)
	}
	if _, err := c.Next(ch); !errors.Is(err, gosasl.ErrUnexpectedServerChallenge) {
		t.Errorf("second challenge: %v", err)
	}
}

func TestParseOAuthBearer(t *testing.T) {
	got, err := ParseOAuthBearer([]byte("n,a=a=2Cb=3Dc,\x01host=imap.example.test\x01port=993\x01auth=Bearer " + secretToken + "\x01\x01"))
	want := gosasl.OAuthBearerOptions{Username: "a,b=c", Token: secretToken, Host: "imap.example.test", Port: 993}
	if err != nil || got != want {
		t.Errorf("got %+v, %v; want %+v", got, err, want)
	}
	if got, err := ParseOAuthBearer([]byte("y,,\x01auth=bearer t\x01x=y\x01\x01")); err != nil || got.Token != "t" || got.Username != "" {
		t.Errorf("minimal: %+v %v", got, err)
	}
	bad := []string{
		"",
		"n,a=u,",
		"p=tls-unique,a=u,\x01auth=Bearer " + secretToken + "\x01\x01", // channel binding
		"n,u,\x01auth=Bearer " + secretToken + "\x01\x01",              // authzid without a=
		"n,a=,\x01auth=Bearer " + secretToken + "\x01\x01",             // empty authzid
		"n,a=a=2Xb,\x01auth=Bearer " + secretToken + "\x01\x01",        // bad escape
		"n,a=a,b,\x01auth=Bearer " + secretToken + "\x01\x01",          // unescaped comma
		"n,a=u,auth=Bearer " + secretToken + "\x01\x01",                // no leading 0x01
		"n,a=u,\x01auth=Bearer " + secretToken + "\x01",                // one final 0x01
		"n,a=u,\x01host=h\x01\x01",                                     // no auth
		"n,a=u,\x01port=99999\x01auth=Bearer " + secretToken + "\x01\x01",
		"n,a=u,\x01port=0110\x01auth=Bearer " + secretToken + "\x01\x01",
		"n,a=u,\x01auth=Basic " + secretToken + "\x01\x01",
		"n,a=u,\x01auth=Bearer " + secretToken + "\x01auth=Bearer x\x01\x01",
		"n,a=u,\x01\x01auth=Bearer " + secretToken + "\x01\x01",
		"n,a=u,\x01a-b=c\x01auth=Bearer " + secretToken + "\x01\x01",
	}
	for _, in := range bad {
		_, err := ParseOAuthBearer([]byte(in))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("ParseOAuthBearer(%q) err = %v, want *ParseError", in, err)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error leaks the token: %v", err)
		}
	}
}

func FuzzParseOAuthBearer(f *testing.F) {
	f.Add("alice@example.test", secretToken, "imap.example.test", 993, []byte("n,a=u,\x01auth=Bearer t\x01\x01"), uint16(4))
	f.Add("a,b=c", "t", "", 0, []byte("y,,\x01host=h\x01port=1\x01auth=bearer t\x01\x01"), uint16(20))
	f.Fuzz(func(t *testing.T, user, token, host string, port int, raw []byte, at uint16) {
		if _, err := ParseOAuthBearer(plantMarker(raw, at)); err != nil && strings.Contains(err.Error(), fuzzMarker) {
			t.Fatalf("error quotes the input: %v", err)
		}
		if got, err := ParseOAuthBearer(raw); err == nil {
			if !validToken(got.Token) || hasControl(got.Username) || hasControl(got.Host) || got.Port < 0 || got.Port > 65535 {
				t.Fatalf("accepted invalid values %+v", got)
			}
		}
		ir, err := InitialResponse("oauthbearer", user, token, host, port)
		if err != nil {
			return
		}
		got, err := ParseOAuthBearer(ir)
		want := gosasl.OAuthBearerOptions{Username: user, Token: token, Host: host, Port: port}
		if err != nil || got != want {
			t.Fatalf("round trip of %+v: %+v %v (ir %q)", want, got, err, ir)
		}
	})
}
