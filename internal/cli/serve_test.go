package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/store"
)

// TestServeTokensMintsAppOnly: the proxy's token source mints the first
// token of an app-only account, which nobody logs in to, exactly once
// even when several sessions ask at the same moment; an interactive
// account without a login is not seeded and still needs one.
func TestServeTokensMintsAppOnly(t *testing.T) {
	var requests atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() != nil || r.PostForm.Get("grant_type") != "client_credentials" {
			http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
			return
		}
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"app-token-1","token_type":"Bearer","expires_in":3600}`)
	}))
	defer ts.Close()

	dir := t.TempDir()
	t.Setenv(store.EnvNoKeyring, "1")
	t.Setenv("MAILKEY_PASSPHRASE", "")
	cfgPath := filepath.Join(dir, "config.toml")
	doc := "[accounts.app]\nprovider = \"generic\"\nemail = \"app@example.test\"\nclient_id = \"cid\"\n" +
		"client_secret = \"csecret\"\nflow = \"client_credentials\"\ntoken_url = \"" + ts.URL + "/token\"\n" +
		"[accounts.person]\nprovider = \"generic\"\nemail = \"p@example.test\"\nclient_id = \"cid\"\n" +
		"auth_url = \"" + ts.URL + "/auth\"\ntoken_url = \"" + ts.URL + "/token\"\n"
	if err := os.WriteFile(cfgPath, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenFile(filepath.Join(dir, "state"), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ctx: context.Background(), stdin: nil, stdout: io.Discard, stderr: io.Discard}
	tok := e.accounts(cfg, cfg.Accounts, st, slog.New(slog.DiscardHandler))

	var wg sync.WaitGroup
	errs := make([]error, 4)
	got := make([]string, 4)
	for i := range errs {
		wg.Go(func() {
			rec, err := tok.Get(context.Background(), "app")
			errs[i] = err
			if rec != nil {
				got[i] = rec.AccessToken
			}
		})
	}
	wg.Wait()
	for i := range errs {
		if errs[i] != nil || got[i] != "app-token-1" {
			t.Fatalf("Get(app) = %q, %v; want the minted token", got[i], errs[i])
		}
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("token endpoint asked %d times, want once", n)
	}

	if _, err := tok.Get(context.Background(), "person"); err == nil {
		t.Error("Get(person) without a login succeeded")
	}
	if _, err := st.Get(context.Background(), "person"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("interactive account was seeded: %v", err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("token endpoint asked %d times after Get(person), want once", n)
	}
}
