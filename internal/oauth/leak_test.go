package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// echoProvider fails every token and revocation request, echoing the whole
// request (secret, code, verifier, refresh token, device code) in the error
// description and, with status 500, as a raw non-JSON body.
func echoProvider(t *testing.T, status int) *fakeProvider {
	p := newProvider(t)
	echo := func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		user, pass, _ := r.BasicAuth()
		p.mu.Lock()
		for _, vs := range r.PostForm {
			p.secrets = append(p.secrets, vs...)
		}
		p.mu.Unlock()
		echoed := r.PostForm.Encode() + " basic=" + user + ":" + pass
		if status >= 500 {
			w.WriteHeader(status)
			fmt.Fprint(w, "upstream failed for "+echoed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": "bad request: " + echoed + " raw " + strings.Join(flatten(r.PostForm), " ")})
	}
	p.mux.HandleFunc("/echo-token", echo)
	p.mux.HandleFunc("/echo-revoke", echo)
	return p
}

func flatten(v url.Values) []string {
	var out []string
	for _, vs := range v {
		out = append(out, vs...)
	}
	return out
}

func TestNoSecretInErrorsOrOutput(t *testing.T) {
	for _, status := range []int{400, 500} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			p := echoProvider(t, status)
			c := p.client()
			c.Config.Endpoint.TokenURL = p.srv.URL + "/echo-token"
			c.RevokeURL = p.srv.URL + "/echo-revoke"
			var texts []string
			collect := func(what string, err error) {
				if err == nil {
					t.Errorf("%s: no error", what)
					return
				}
				texts = append(texts, what+": "+err.Error(), fmt.Sprintf("%v %+v", err, Classify(err)))
			}

			// Browser login: code and verifier go to the echoing endpoint.
			br := newBrowser()
			var out syncBuffer
			_, err := c.LoopbackLogin(context.Background(), LoopbackOptions{OpenBrowser: br.open, Out: &out})
			collect("loopback", err)
			page := <-br.pages
			texts = append(texts, "page: "+page.body, "loopback output: "+out.String())

			// Paste login.
			tok, pasteOut, err := paste(t, c, func(r *url.URL) string { return r.String() })
			if tok != nil {
				t.Error("paste login succeeded")
			}
			collect("paste", err)
			texts = append(texts, "paste output: "+pasteOut)

			_, err = c.Refresh(context.Background(), "rt-very-secret-refresh")
			collect("refresh", err)
			_, err = c.ClientCredentials(context.Background())
			collect("client credentials", err)
			collect("revoke", c.Revoke(context.Background(), "at-very-secret-access", "access_token"))

			// Device flow: the device code goes to the echoing endpoint.
			d := deviceProvider(t, 900)
			dc := d.client()
			dc.Config.Endpoint.TokenURL = p.srv.URL + "/echo-token"
			clock := &fakeClock{now: time.Now()}
			var dout syncBuffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sleep := func(ctx context.Context, d time.Duration) error {
				if len(clock.sleeps) > 3 {
					cancel() // a 500 is retried: stop after a few polls
				}
				return clock.Sleep(ctx, d)
			}
			_, err = dc.DeviceLogin(ctx, &dout, DeviceOptions{QR: true, Now: clock.Now, Sleep: sleep})
			collect("device", err)
			texts = append(texts, "device output: "+dout.String())

			secrets := append(p.allSecrets(), d.allSecrets()...)
			secrets = append(secrets, "rt-very-secret-refresh", "at-very-secret-access")
			for _, text := range texts {
				for _, s := range secrets {
					if len(s) >= 8 && strings.Contains(text, s) && !isPublic(s) {
						t.Errorf("secret %q leaked in %s", s, text)
					}
				}
			}
		})
	}
}

// isPublic lists form values the echo records that are not secrets.
func isPublic(s string) bool {
	switch s {
	case "client-id", "authorization_code", "refresh_token", "client_credentials", "access_token",
		"https://mail.example/ offline_access", deviceGrantType:
		return true
	}
	return strings.HasPrefix(s, "http://127.0.0.1:") // redirect_uri
}

func TestTokenStringHidesSecrets(t *testing.T) {
	p := newProvider(t)
	p.rotate = true
	tok, err := p.client().Refresh(context.Background(), "rt-old-value")
	if err != nil {
		t.Fatal(err)
	}
	tok.IDToken = "id-token-value"
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, *tok)} {
		assertNoSecret(t, "formatted token", s, []string{tok.AccessToken, tok.RefreshToken, "id-token-value"})
		if !strings.Contains(s, "refreshable") {
			t.Errorf("formatted token %q says too little", s)
		}
	}
}
