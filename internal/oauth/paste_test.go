package oauth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// urlCatcher hands the first printed authorization URL to the test.
type urlCatcher struct {
	syncBuffer
	urls chan string
	sent bool
}

func (u *urlCatcher) Write(p []byte) (int, error) {
	n, err := u.syncBuffer.Write(p)
	if !u.sent {
		for _, f := range strings.Fields(u.String()) {
			if strings.Contains(f, "/authorize?") {
				u.sent = true
				u.urls <- f
				break
			}
		}
	}
	return n, err
}

// approve visits the authorization URL without following the redirect (the
// paste flow's redirect goes nowhere) and returns the redirect location.
func approve(t *testing.T, authURL string) *url.URL {
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Error(err)
		return &url.URL{}
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Error(err)
		return &url.URL{}
	}
	return loc
}

// paste runs PasteLogin, pasting what answer makes of the redirect.
func paste(t *testing.T, c *Client, answer func(redirect *url.URL) string) (*Token, string, error) {
	out := &urlCatcher{urls: make(chan string, 1)}
	in, w := io.Pipe()
	go func() {
		u, ok := <-out.urls
		if !ok {
			return
		}
		io.WriteString(w, answer(approve(t, u))+"\n")
	}()
	tok, err := c.PasteLogin(context.Background(), in, out)
	close(out.urls)
	w.Close()
	return tok, out.String(), err
}

func TestPasteLoginWithURL(t *testing.T) {
	p := newProvider(t)
	tok, out, err := paste(t, p.client(), func(r *url.URL) string { return "  " + r.String() + "  " })
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" {
		t.Fatal("no access token")
	}
	if r := p.authQuery.Get("redirect_uri"); !strings.HasPrefix(r, "http://127.0.0.1:") || !strings.Contains(out, r) {
		t.Errorf("redirect_uri %q not a loopback URI explained in the output:\n%s", r, out)
	}
	if !strings.Contains(out, "address bar") {
		t.Errorf("output does not explain what to paste:\n%s", out)
	}
	if p.tokenForm.Get("code_verifier") == "" {
		t.Error("no PKCE verifier sent")
	}
	assertNoSecret(t, "output", out, p.allSecrets())
}

func TestPasteLoginWithBareCode(t *testing.T) {
	p := newProvider(t)
	tok, _, err := paste(t, p.client(), func(r *url.URL) string { return r.Query().Get("code") })
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("tok=%v err=%v", tok, err)
	}
}

func TestPasteLoginWithQueryOnly(t *testing.T) {
	p := newProvider(t)
	tok, _, err := paste(t, p.client(), func(r *url.URL) string { return r.RawQuery })
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("tok=%v err=%v", tok, err)
	}
}

func TestPasteLoginWrongStateRefused(t *testing.T) {
	p := newProvider(t)
	_, _, err := paste(t, p.client(), func(r *url.URL) string {
		q := r.Query()
		q.Set("state", "some-other-login")
		r.RawQuery = q.Encode()
		return r.String()
	})
	if !errors.Is(err, ErrStateMismatch) {
		t.Fatalf("err = %v, want ErrStateMismatch", err)
	}
	if len(p.codes) != 1 {
		t.Error("code with the wrong state was redeemed")
	}
}

func TestPasteLoginProviderError(t *testing.T) {
	p := newProvider(t)
	p.authError = "access_denied"
	_, _, err := paste(t, p.client(), func(r *url.URL) string { return r.String() })
	if !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("err = %v, want ErrAccessDenied", err)
	}
}

func TestPasteLoginEmptyInput(t *testing.T) {
	p := newProvider(t)
	_, err := p.client().PasteLogin(context.Background(), strings.NewReader(""), io.Discard)
	if !errors.Is(err, errEmptyPaste) {
		t.Fatalf("err = %v", err)
	}
}

func TestPastedCodeShapes(t *testing.T) {
	c := &Client{}
	for in, want := range map[string]string{
		"4/0AX4XfWh-abc":   "4/0AX4XfWh-abc", // Google codes hold a slash
		"4%2F0AX4XfWh-abc": "4/0AX4XfWh-abc", // copied percent-encoded
		"http://127.0.0.1:5555/?state=S&code=4%2Fxyz&scope=a": "4/xyz",
		"?code=c1&state=S":        "c1",
		"code=c2&state=S":         "c2",
		"state=S&code=c3#section": "c3",
	} {
		got, err := c.pastedCode(in, "S")
		if err != nil || got != want {
			t.Errorf("pastedCode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"http://127.0.0.1:5555/?state=S", "code=c&state=T", "http://127.0.0.1:5555/?code=c"} {
		if _, err := c.pastedCode(in, "S"); err == nil {
			t.Errorf("pastedCode(%q) accepted", in)
		}
	}
}
