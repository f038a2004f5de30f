package oauth

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultLoginTimeout bounds a browser login when LoopbackOptions.Timeout is 0.
const DefaultLoginTimeout = 5 * time.Minute

// Limits of the callback server: it answers one browser, so it needs little.
const (
	callbackHeaderTimeout = 10 * time.Second
	callbackMaxHeader     = 16 << 10
	shutdownGrace         = 5 * time.Second
)

// LoopbackOptions tune LoopbackLogin. The zero value works: no browser is
// opened (the URL is still printed) and the login times out after
// DefaultLoginTimeout.
type LoopbackOptions struct {
	// OpenBrowser opens url in the user's browser. Nil, or an error from it,
	// only means the user opens the printed URL by hand.
	OpenBrowser func(url string) error
	// Out receives the URL line and status messages. Nil discards them.
	Out io.Writer
	// Timeout bounds the whole login; 0 means DefaultLoginTimeout.
	Timeout time.Duration
	// Port is the listener's port; 0 (the default) picks a free one, which
	// RFC 8252 §7.3 requires providers to accept.
	Port int
}

// LoopbackLogin runs the authorization code grant with PKCE S256 and a
// random state, receiving the code on a one-shot HTTP listener bound to the
// loopback host (RFC 8252 §7.3). It prints the authorization URL to opts.Out,
// tries opts.OpenBrowser, and waits. A callback whose state does not match is
// answered with 400 and ignored; the first one that matches ends the flow:
// its RFC 9207 iss is checked, a provider error becomes an *Error (and is
// shown in words in the browser), a code is exchanged for a token. Without a
// callback the flow ends with ErrTimeout. The listener is closed on return.
func (c *Client) LoopbackLogin(ctx context.Context, opts LoopbackOptions) (*Token, error) {
	const op = "browser login"
	if err := checkEndpoints(c.Config.Endpoint.AuthURL, c.Config.Endpoint.TokenURL); err != nil {
		return nil, classify(op, err, nil)
	}
	host, err := c.redirectHost()
	if err != nil {
		return nil, err
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultLoginTimeout
	}

	listeners, port, err := listenLoopback(host, opts.Port)
	if err != nil {
		return nil, &Error{Op: op, Err: fmt.Errorf("cannot listen for the browser's redirect: %w", err)}
	}
	req := c.newAuthRequest(redirectURI(host, port))
	f := &callbackServer{
		state:     req.State,
		callbacks: make(chan callback, 1),
		done:      make(chan struct{}),
	}
	srv := &http.Server{
		Handler:           f,
		ReadHeaderTimeout: callbackHeaderTimeout,
		MaxHeaderBytes:    callbackMaxHeader,
		ErrorLog:          log.New(io.Discard, "", 0), // a library does not print
	}
	var wg sync.WaitGroup
	for _, ln := range listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv.Serve(ln) // returns when the server is shut down
		}()
	}
	defer func() {
		close(f.done)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
		wg.Wait()
	}()

	authURL := req.URL

	fmt.Fprintf(out, "To log in, open this URL in a browser on this machine:\n\n    %s\n\n", authURL)
	if opts.OpenBrowser != nil {
		if err := opts.OpenBrowser(authURL); err != nil {
			fmt.Fprintf(out, "Could not open a browser (%v); open the URL above yourself.\n", err)
		}
	}
	fmt.Fprintf(out, "Waiting for the browser to finish (up to %s)...\n", timeout.Round(time.Second))

	ctx, cancel := context.WithTimeoutCause(ctx, timeout, ErrTimeout)
	defer cancel()
	select {
	case <-ctx.Done():
		if errors.Is(context.Cause(ctx), ErrTimeout) {
			return nil, &Error{Op: op, Err: ErrTimeout}
		}
		return nil, classify(op, ctx.Err(), nil)
	case cb := <-f.callbacks:
		tok, err := c.finishCallback(ctx, cb.query, req.verifier, req.Redirect, req.nonce)
		cb.reply <- err
		return tok, err
	}
}

// listenLoopback binds host:port. For "localhost" it binds 127.0.0.1 and, on
// the same port, ::1 when the machine has it, since the browser may resolve
// the name to either.
func listenLoopback(host string, port int) ([]net.Listener, int, error) {
	first := host
	if host == "localhost" {
		first = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(first, strconv.Itoa(port)))
	if err != nil {
		return nil, 0, err
	}
	port = ln.Addr().(*net.TCPAddr).Port
	lns := []net.Listener{ln}
	if host == "localhost" {
		if ln6, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(port))); err == nil {
			lns = append(lns, ln6)
		}
	}
	return lns, port, nil
}

func (c *Client) finishCallback(ctx context.Context, q url.Values, verifier, redirect, nonce string) (*Token, error) {
	code, err := c.codeFromRedirect(q)
	if err != nil {
		return nil, err
	}
	return c.exchange(ctx, code, verifier, redirect, nonce)
}

type callback struct {
	query url.Values
	reply chan error // the flow's outcome, shown to the browser
}

// callbackServer accepts exactly one redirect whose state matches.
type callbackServer struct {
	state     string
	claimed   atomic.Bool
	callbacks chan callback // buffered 1: only the claiming request sends
	done      chan struct{} // closed when the flow returns
}

func (f *callbackServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		render(w, http.StatusMethodNotAllowed, "Not a sign-in response", "This address only accepts the provider's redirect.")
		return
	}
	q := r.URL.Query()
	if !sameState(q.Get("state"), f.state) {
		render(w, http.StatusBadRequest, "Not this sign-in",
			"This response does not belong to the login in progress and was ignored. Finish the login in the tab mailkey opened.")
		return
	}
	if !f.claimed.CompareAndSwap(false, true) {
		render(w, http.StatusBadRequest, "Already used", "This login has already received its response. You can close this tab.")
		return
	}
	reply := make(chan error, 1)
	select {
	case f.callbacks <- callback{query: q, reply: reply}:
	case <-f.done:
		render(w, http.StatusServiceUnavailable, "Login no longer in progress", "Run the login again.")
		return
	}
	var err error
	select {
	case err = <-reply:
	case <-r.Context().Done():
		return
	case <-f.done:
		select {
		case err = <-reply:
		default:
			render(w, http.StatusServiceUnavailable, "Login no longer in progress", "Run the login again.")
			return
		}
	}
	if err != nil {
		render(w, http.StatusBadRequest, "Login failed", words(err)+" You can close this tab; the terminal says what to do next.")
		return
	}
	render(w, http.StatusOK, "Logged in", "mailkey has its token. You can close this tab and return to the terminal.")
}

// page is parsed on first use, not at the start of every mailkey command.
var page = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mailkey: {{.Title}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;line-height:1.5}</style>
</head><body><h1>{{.Title}}</h1><p>{{.Message}}</p></body></html>
`))
})

func render(w http.ResponseWriter, status int, title, message string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(status)
	page().Execute(w, struct{ Title, Message string }{title, message})
}
