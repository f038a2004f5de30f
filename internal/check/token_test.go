package check

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/store"
)

// msToken is shaped like a Microsoft delegated access token for Exchange
// Online (payload only; the signature is never checked).
func msToken(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"typ":"JWT","alg":"RS256"}`)) + "." + enc([]byte(payload)) + ".c2lnbmF0dXJl"
}

func TestParseClaims(t *testing.T) {
	tok := msToken(`{"aud":"https://outlook.office.com","iss":"https://sts.windows.net/t/","exp":1893456000,"scp":"IMAP.AccessAsUser.All SMTP.Send","upn":"a@contoso.com","appid":"app","tid":"t"}`)
	c := ParseClaims(tok)
	if c == nil || c.User != "a@contoso.com" || strings.Join(c.Scopes, ",") != "IMAP.AccessAsUser.All,SMTP.Send" ||
		strings.Join(c.Audience, ",") != "https://outlook.office.com" || c.Expiry.Unix() != 1893456000 || c.AppID != "app" {
		t.Fatalf("claims %+v", c)
	}
	// App-only tokens carry roles; aud may be a list.
	c = ParseClaims(msToken(`{"aud":["a","b"],"roles":["IMAP.AccessAsApp"]}`))
	if c == nil || strings.Join(c.Scopes, ",") != "IMAP.AccessAsApp" || len(c.Audience) != 2 {
		t.Fatalf("claims %+v", c)
	}
	for _, opaque := range []string{"ya29.a0AfH6SMBx", "a.b", "x.!!!.y", msToken(`[1]`), strings.Repeat("a.", maxJWTSize)} {
		if c := ParseClaims(opaque); c != nil {
			t.Errorf("ParseClaims(%.20q) = %+v, want nil", opaque, c)
		}
	}
}

// The token step's detail shows claims, never the token.
func TestDescribeTokenHidesToken(t *testing.T) {
	tok := msToken(`{"aud":"https://outlook.office.com","scp":"IMAP.AccessAsUser.All","upn":"a@contoso.com","exp":1893456000}`)
	now := time.Unix(1893450000, 0)
	rec := &store.Record{AccessToken: tok, Expiry: time.Unix(1893456000, 0), Scopes: []string{"https://outlook.office.com/IMAP.AccessAsUser.All"}}
	d := describeToken(rec, ParseClaims(tok), now)
	if strings.Contains(d, tok) || strings.Contains(d, strings.Split(tok, ".")[1]) {
		t.Fatalf("the detail holds the token: %s", d)
	}
	for _, want := range []string{"valid for 1h40m0s", "aud https://outlook.office.com", "scp IMAP.AccessAsUser.All", "user a@contoso.com"} {
		if !strings.Contains(d, want) {
			t.Errorf("detail %q lacks %q", d, want)
		}
	}
}

func TestIntrospector(t *testing.T) {
	const tok = "opaque-token-0123456789"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		user, pass, basic := r.BasicAuth()
		switch {
		case r.Form.Get("token") != tok:
			w.Write([]byte(`{"active":false}`))
		case basic && user == "conf" && pass == "s%2Fecret": // form-encoded, RFC 6749 §2.3.1
			w.Write([]byte(`{"active":true,"scope":"openid mail","email":"a@example.test","exp":1893456000}`))
		case !basic && r.Form.Get("client_id") == "public":
			w.Write([]byte(`{"active":true,"username":"a@example.test"}`))
		default:
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"invalid_client"}`))
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	in, err := (&Introspector{URL: srv.URL, ClientID: "conf", ClientSecret: "s/ecret"}).Introspect(ctx, tok)
	if err != nil || !in.Active || in.Identity() != "a@example.test" || strings.Join(in.Scopes(), " ") != "openid mail" || in.Expiry.Unix() != 1893456000 {
		t.Fatalf("confidential: %+v, %v", in, err)
	}
	in, err = (&Introspector{URL: srv.URL, ClientID: "public"}).Introspect(ctx, tok)
	if err != nil || !in.Active || in.Identity() != "a@example.test" {
		t.Fatalf("public: %+v, %v", in, err)
	}
	in, err = (&Introspector{URL: srv.URL, ClientID: "public"}).Introspect(ctx, "other-token-0123456789")
	if err != nil || in.Active {
		t.Fatalf("unknown token: %+v, %v", in, err)
	}
	_, err = (&Introspector{URL: srv.URL, ClientID: "nobody"}).Introspect(ctx, tok)
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") || strings.Contains(err.Error(), tok) {
		t.Fatalf("refused: %v", err)
	}
	if _, err := (&Introspector{}).Introspect(ctx, tok); err != ErrNoIntrospection {
		t.Fatalf("no URL: %v", err)
	}
}

// An introspection endpoint that redirects does not get the token sent on:
// a 307 would otherwise resend the form, token included, to the new place.
func TestIntrospectorFollowsNoRedirect(t *testing.T) {
	const tok = "opaque-token-0123456789"
	leaked := make(chan string, 1)
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		leaked <- r.Form.Get("token")
		w.Write([]byte(`{"active":true}`))
	}))
	defer elsewhere.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	in, err := (&Introspector{URL: srv.URL, ClientID: "public", HTTPClient: srv.Client()}).Introspect(context.Background(), tok)
	select {
	case <-leaked:
		t.Fatal("the token was sent on to the redirect's target")
	default:
	}
	if err == nil || !strings.Contains(err.Error(), "HTTP 307") || strings.Contains(err.Error(), tok) {
		t.Fatalf("Introspect = %+v, %v; want an HTTP 307 error", in, err)
	}
}
