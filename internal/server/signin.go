package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/mailkey/mailkey/internal/oauth"
	"github.com/mailkey/mailkey/internal/provider"
)

// SignIn signs an account in again from the status page, the way mailkey
// login does; Config.SignIn is the CLI's.
type SignIn interface {
	// Client returns the account's OAuth client, its provider resolved,
	// or an error that says why the account cannot sign in here.
	Client(ctx context.Context, account string) (*oauth.Client, error)
	// Save checks that tok belongs to the account's address and stores
	// it through the token manager. Its error is shown on the page, so
	// it says what to do next and holds no secret.
	Save(ctx context.Context, account string, tok *oauth.Token) error
}

// saveTimeout bounds checking who signed in and storing the tokens; it
// runs detached from the browser's request, which may go away meanwhile.
const saveTimeout = time.Minute

// signIns are the status page's sign-ins in progress, at most one per
// account, and the page's CSRF token.
type signIns struct {
	csrf    string
	mu      sync.Mutex
	pending map[string]*pendingSignIn // by account
}

type pendingSignIn struct {
	account string
	client  *oauth.Client
	req     *oauth.AuthRequest
	expires time.Time
}

func newSignIns() *signIns {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return &signIns{csrf: base64.RawURLEncoding.EncodeToString(b), pending: map[string]*pendingSignIn{}}
}

// trusted refuses what a page of another site could send: the status
// page holds the CSRF token and accounts' states, so on a loopback
// listener a Host that is not loopback (DNS rebinding) is refused too.
func trusted(r *http.Request) bool {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if ta, ok := local.(*net.TCPAddr); ok && ta.IP.IsLoopback() {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		return provider.IsLoopbackHost(host)
	}
	return true
}

// sameOrigin checks a POST's Origin and Fetch Metadata, where the browser
// sends them, against the page's own origin.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host {
		return false
	}
	site := r.Header.Get("Sec-Fetch-Site")
	return site == "" || site == "same-origin" || site == "none"
}

// startSignIn answers the page's "Sign in again" button: with the CSRF
// token, it sends the browser to the provider, whose redirect comes back
// to this listener's root, as seen by the browser (so it works through an
// ssh -L tunnel on any local port).
func (s *Server) startSignIn(si *signIns) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token := r.PostFormValue("csrf")
		if !trusted(r) || !sameOrigin(r) || subtle.ConstantTimeCompare([]byte(token), []byte(si.csrf)) != 1 {
			http.Error(w, "forbidden: this form was not sent by the status page; reload the page and try again", http.StatusForbidden)
			return
		}
		name := r.PostFormValue("account")
		if !s.configured(name) {
			s.renderStatus(w, r, si, http.StatusBadRequest, "No account "+name+" is configured.")
			return
		}
		client, err := s.cfg.SignIn.Client(r.Context(), name)
		if err != nil {
			s.renderStatus(w, r, si, http.StatusBadRequest, "Cannot sign "+name+" in: "+err.Error())
			return
		}
		req, err := client.NewAuthRequest((&url.URL{Scheme: "http", Host: r.Host, Path: "/"}).String())
		if err != nil {
			s.renderStatus(w, r, si, http.StatusBadRequest, "Cannot sign "+name+" in from this address ("+err.Error()+"): open the status page at a loopback address, such as http://127.0.0.1:PORT/.")
			return
		}
		now := time.Now()
		si.mu.Lock()
		for a, p := range si.pending {
			if now.After(p.expires) {
				delete(si.pending, a)
			}
		}
		si.pending[name] = &pendingSignIn{account: name, client: client, req: req, expires: now.Add(oauth.DefaultLoginTimeout)}
		si.mu.Unlock()
		s.log.Info("sign-in started from the status page", "account", name)
		w.Header().Set("Referrer-Policy", "no-referrer")
		http.Redirect(w, r, req.URL, http.StatusSeeOther)
	}
}

// finishSignIn takes the provider's redirect: the sign-in whose state it
// carries ends here, once, and its tokens are stored as mailkey login
// stores them.
func (s *Server) finishSignIn(si *signIns, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	si.mu.Lock()
	var p *pendingSignIn
	for a, c := range si.pending {
		if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(c.req.State)) == 1 {
			p = c
			delete(si.pending, a)
		}
	}
	si.mu.Unlock()
	if p == nil || time.Now().After(p.expires) {
		s.renderStatus(w, r, si, http.StatusBadRequest, "This sign-in response does not belong to a sign-in in progress (or it took too long) and was ignored: press Sign in again.")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), saveTimeout)
	defer cancel()
	tok, err := p.client.Finish(ctx, p.req, q)
	if err == nil {
		err = s.cfg.SignIn.Save(ctx, p.account, tok)
	}
	if err != nil {
		s.log.Warn("sign-in from the status page failed", "account", p.account, "error", err.Error())
		s.renderStatus(w, r, si, http.StatusBadRequest, "Signing "+p.account+" in failed: "+err.Error())
		return
	}
	s.log.Info("signed in from the status page", "account", p.account)
	if ref := s.refresherOf(p.account); ref != nil {
		ref.poke()
	}
	http.Redirect(w, r, "/#account-"+url.PathEscape(p.account), http.StatusSeeOther)
}

// configured reports whether name is a configured account.
func (s *Server) configured(name string) bool {
	for _, a := range s.accounts() {
		if a.Name == name {
			return true
		}
	}
	return false
}
