package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/oauth2"
)

// The scripted browser drives the provider's own pages the way a person would: it follows
// redirects one by one (never automatically), keeps cookies, fills the login form, presses
// Allow or Deny on the consent page, and submits the device-flow forms. It stops at the first
// redirect that leaves the issuer: the client's redirect_uri carrying code or error.

const (
	browserMaxSteps = 25
	maxPageBytes    = 1 << 20
)

// Errors of the scripted browser. They never contain passwords, codes or tokens.
var (
	// ErrLoginRejected: the provider refused the user name or password.
	ErrLoginRejected = errors.New("e2e: provider rejected the login")
	// ErrUnexpectedPage: the provider showed a page the browser cannot handle (an error page,
	// say); the error text includes the page's visible text.
	ErrUnexpectedPage = errors.New("e2e: unexpected provider page")
	// ErrDeviceNotApproved: the device flow did not end on the provider's success page.
	ErrDeviceNotApproved = errors.New("e2e: device code not approved")
)

// BrowseOptions says what the scripted browser does on the provider's pages.
type BrowseOptions struct {
	User, Password string
	// Deny presses Deny on the consent page (or aborts the device confirmation).
	Deny bool
	// Deliver makes the browser GET the final redirect, so that a loopback listener waiting
	// for it (the program under test) receives the code or error.
	Deliver bool
	// UserCode is typed into the device flow's code form when the provider asks for one.
	UserCode string
}

// Browse opens startURL (an authorization URL, or a device verification URL) in a fresh
// cookie jar and clicks through the provider's pages. It returns the redirect that leaves the
// issuer, or nil when the flow ended on a provider page that needs no redirect (the device
// flow's success page). The redirect is called only with Deliver set.
func (s *Stack) Browse(ctx context.Context, startURL string, o BrowseOptions) (*url.URL, error) {
	redirect, page, err := s.browse(ctx, startURL, o)
	if err != nil {
		return nil, err
	}
	if redirect == nil {
		if page.hasID("success") {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %s", ErrUnexpectedPage, page.summary())
	}
	if o.Deliver {
		if err := s.deliver(ctx, redirect); err != nil {
			return redirect, err
		}
	}
	return redirect, nil
}

// BrowserLogin follows authorizeURL through the login form and the consent page (Allow) and
// returns the final redirect to the client's redirect_uri without calling it.
func (s *Stack) BrowserLogin(ctx context.Context, authorizeURL, user, password string) (*url.URL, error) {
	return s.mustRedirect(s.Browse(ctx, authorizeURL, BrowseOptions{User: user, Password: password}))
}

// Deliver does what BrowserLogin does, then GETs the redirect so that the loopback listener
// waiting for it receives the authorization code.
func (s *Stack) Deliver(ctx context.Context, authorizeURL, user, password string) (*url.URL, error) {
	return s.mustRedirect(s.Browse(ctx, authorizeURL, BrowseOptions{User: user, Password: password, Deliver: true}))
}

// Deny logs in, presses Deny on the consent page, and GETs the resulting redirect
// (error=access_denied) so that a waiting loopback listener receives it. Use Browse with
// Deny and without Deliver to only look at the redirect.
func (s *Stack) Deny(ctx context.Context, authorizeURL, user, password string) (*url.URL, error) {
	return s.mustRedirect(s.Browse(ctx, authorizeURL, BrowseOptions{User: user, Password: password, Deny: true, Deliver: true}))
}

// ApproveDevice approves a device authorization (RFC 8628) as the user: codeOrURI is either
// verification_uri_complete or the user code a program showed (typed into the provider's
// form). It returns nil once the provider's success page appears.
func (s *Stack) ApproveDevice(ctx context.Context, codeOrURI, user, password string) error {
	start, o := codeOrURI, BrowseOptions{User: user, Password: password}
	if !strings.HasPrefix(codeOrURI, "http://") && !strings.HasPrefix(codeOrURI, "https://") {
		start, o.UserCode = s.Issuer+"/device", codeOrURI
	}
	_, page, err := s.browse(ctx, start, o)
	if err != nil {
		return err
	}
	if !page.hasID("success") {
		return fmt.Errorf("%w: %s", ErrDeviceNotApproved, page.summary())
	}
	return nil
}

// BrowseAs signs in as user at the provider that authorizeURL points to, consents, and
// delivers the redirect to the client (its loopback listener): a browser for a stack that
// another process runs, such as the sandbox's $BROWSER helper. It returns the redirect.
func BrowseAs(ctx context.Context, authorizeURL, user, password string) (*url.URL, error) {
	u, err := url.Parse(authorizeURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: not an authorization URL", ErrUnexpectedPage)
	}
	if !isLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("e2e: %s is not a loopback provider", u.Host)
	}
	s := &Stack{Issuer: u.Scheme + "://" + u.Host, client: &http.Client{Transport: &http.Transport{Proxy: nil}}}
	return s.Deliver(ctx, authorizeURL, user, password)
}

// isLoopbackHost: the stack runs on loopback only, and so does what browses it.
func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func (s *Stack) mustRedirect(u *url.URL, err error) (*url.URL, error) {
	if err == nil && u == nil {
		return nil, fmt.Errorf("%w: no redirect to the client", ErrUnexpectedPage)
	}
	return u, err
}

// AuthCodeToken gets a token for user the way a native app does: authorization code with PKCE
// for ClientPublic, the browser part scripted. The redirect_uri names a free loopback port but
// nothing listens there: the code is taken from the redirect directly. Scopes default to
// DefaultScopes. The token carries a refresh token.
func (s *Stack) AuthCodeToken(ctx context.Context, user, password string, scopes ...string) (*oauth2.Token, error) {
	if len(scopes) == 0 {
		scopes = DefaultScopes
	}
	ports, release, err := freePorts(1, false)
	if err != nil {
		return nil, err
	}
	defer release()
	cfg := s.OAuth2Config(ClientPublic, "", "http://"+Loopback(ports[0])+"/", scopes...)
	verifier := oauth2.GenerateVerifier()
	state := randomString()
	redirect, err := s.BrowserLogin(ctx, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), user, password)
	if err != nil {
		return nil, err
	}
	q := redirect.Query()
	if q.Get("state") != state {
		return nil, errors.New("e2e: state in the redirect does not match")
	}
	if e := q.Get("error"); e != "" {
		return nil, fmt.Errorf("e2e: authorization failed: %s", e)
	}
	if q.Get("iss") != s.Issuer {
		return nil, errors.New("e2e: iss in the redirect is not the issuer (RFC 9207)")
	}
	return cfg.Exchange(s.Context(ctx), q.Get("code"), oauth2.VerifierOption(verifier))
}

func randomString() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// deliver GETs the client's redirect URI. Whatever the listener answers is fine.
func (s *Stack) deliver(ctx context.Context, u *url.URL) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("e2e: deliver redirect: %w", redactURLError(err))
	}
	c := &http.Client{
		Transport:     s.client.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("e2e: deliver redirect to %s: %w", u.Host, redactURLError(err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxPageBytes))
	resp.Body.Close()
	return nil
}

// redactURLError drops the URL (which carries the code) from a *url.Error.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// browse runs the page loop. It returns either the redirect leaving the issuer or the last
// page shown.
func (s *Stack) browse(ctx context.Context, start string, o BrowseOptions) (*url.URL, *page, error) {
	issuer, err := url.Parse(s.Issuer)
	if err != nil {
		return nil, nil, err
	}
	cur, err := url.Parse(start)
	if err != nil {
		return nil, nil, fmt.Errorf("e2e: start URL: %w", redactURLError(err))
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{
		Transport:     s.client.Transport,
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	var form url.Values // non-nil: POST it to cur
	codeSent := false
	for step := 0; step < browserMaxSteps; step++ {
		if cur.Scheme != issuer.Scheme || cur.Host != issuer.Host {
			return cur, nil, nil // left the provider: the client's redirect_uri
		}
		var req *http.Request
		if form != nil {
			req, err = http.NewRequestWithContext(ctx, http.MethodPost, cur.String(), strings.NewReader(form.Encode()))
			if req != nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
		} else {
			req, err = http.NewRequestWithContext(ctx, http.MethodGet, cur.String(), nil)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("e2e: browser: %w", redactURLError(err))
		}
		form = nil
		resp, err := c.Do(req)
		if err != nil {
			return nil, nil, fmt.Errorf("e2e: browser %s %s: %w", req.Method, cur.Path, redactURLError(err))
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxPageBytes))
		resp.Body.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("e2e: browser %s %s: %w", req.Method, cur.Path, err)
		}
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			loc, err := cur.Parse(resp.Header.Get("Location"))
			if err != nil {
				return nil, nil, fmt.Errorf("e2e: browser: bad Location from %s", cur.Path)
			}
			cur = loc
			continue
		}
		p := parsePage(resp.StatusCode, string(body))
		next := func(f *htmlForm, fields url.Values) error {
			u, err := cur.Parse(f.action)
			if err != nil {
				return fmt.Errorf("e2e: browser: bad form action on %s", cur.Path)
			}
			cur, form = u, fields
			return nil
		}
		switch {
		case p.form("login") != nil:
			if resp.StatusCode == http.StatusUnauthorized {
				return nil, nil, ErrLoginRejected
			}
			f := p.form("login")
			fields := f.values()
			fields.Set("login", o.User)
			fields.Set("password", o.Password)
			err = next(f, fields)
		case p.form("consent") != nil:
			f := p.form("consent")
			if o.Deny {
				if f = p.form("abort"); f == nil {
					return nil, nil, fmt.Errorf("%w: consent page without a Deny form", ErrUnexpectedPage)
				}
			}
			err = next(f, f.values())
		case p.form("op.deviceConfirmForm") != nil:
			f := p.form("op.deviceConfirmForm")
			fields := f.values()
			if o.Deny {
				fields.Set("abort", "yes")
			}
			err = next(f, fields)
		case p.form("op.deviceInputForm") != nil && !strings.Contains(p.body, "forms[0].submit()"):
			if o.UserCode == "" || codeSent || p.hasID("error") {
				return nil, nil, fmt.Errorf("%w: device code form: %s", ErrUnexpectedPage, p.summary())
			}
			f := p.form("op.deviceInputForm")
			fields := f.values()
			fields.Set("user_code", o.UserCode)
			codeSent = true
			err = next(f, fields)
		case len(p.forms) > 0 && strings.Contains(p.body, "forms[0].submit()"):
			// an auto-submitting page (GET /device?user_code=…): submit it as a browser would
			err = next(&p.forms[0], p.forms[0].values())
		default:
			return nil, p, nil
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return nil, nil, fmt.Errorf("%w: more than %d steps", ErrUnexpectedPage, browserMaxSteps)
}

// page is an HTML page reduced to what the browser needs: its forms and whether an element id
// occurs.
type page struct {
	status int
	body   string
	forms  []htmlForm
}

type htmlForm struct {
	id, action string
	fields     [][2]string
}

func (f *htmlForm) values() url.Values {
	v := url.Values{}
	for _, kv := range f.fields {
		v.Set(kv[0], kv[1])
	}
	return v
}

var (
	reForm  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	reInput = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	reAttr  = regexp.MustCompile(`(?is)([a-z_:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')`)
	reTag   = regexp.MustCompile(`(?s)<script.*?</script>|<style.*?</style>|<[^>]*>`)
	reCode  = regexp.MustCompile(`(?is)<code\b[^>]*>.*?</code>`)
)

func attrs(s string) map[string]string {
	m := map[string]string{}
	for _, a := range reAttr.FindAllStringSubmatch(s, -1) {
		m[strings.ToLower(a[1])] = html.UnescapeString(a[2] + a[3])
	}
	return m
}

// parsePage finds the forms of the provider's pages (its own plain HTML, and the forms
// oidc-provider generates for the device flow). It is no general HTML parser.
func parsePage(status int, body string) *page {
	p := &page{status: status, body: body}
	for _, m := range reForm.FindAllStringSubmatch(body, -1) {
		fa := attrs(m[1])
		f := htmlForm{id: fa["id"], action: fa["action"]}
		for _, in := range reInput.FindAllStringSubmatch(m[2], -1) {
			ia := attrs(in[1])
			if ia["name"] != "" {
				f.fields = append(f.fields, [2]string{ia["name"], ia["value"]})
			}
		}
		p.forms = append(p.forms, f)
	}
	return p
}

func (p *page) form(id string) *htmlForm {
	for i := range p.forms {
		if p.forms[i].id == id {
			return &p.forms[i]
		}
	}
	return nil
}

func (p *page) hasID(id string) bool {
	return strings.Contains(p.body, `id="`+id+`"`)
}

// summary is the page's status and visible text, shortened. Provider pages never show
// passwords or tokens; the user code of the device flow (in <code>) is left out.
func (p *page) summary() string {
	visible := reTag.ReplaceAllString(reCode.ReplaceAllString(p.body, "[code]"), " ")
	text := strings.Join(strings.Fields(html.UnescapeString(visible)), " ")
	if len(text) > 300 {
		text = text[:300] + "…"
	}
	return "HTTP " + strconv.Itoa(p.status) + ": " + text
}
