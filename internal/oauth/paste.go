package oauth

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
)

// pasteLineLimit bounds the pasted line; redirect URLs are a few hundred bytes.
const pasteLineLimit = 16 << 10

// Dynamic port range (RFC 6335 §6) for the paste flow's redirect URI.
const (
	pastePortMin = 49152
	pastePortMax = 65535
)

// errEmptyPaste: the user pasted nothing.
var errEmptyPaste = errors.New("nothing was pasted")

// PasteLogin runs the authorization code grant (PKCE S256, state) for a
// machine without a browser. It prints the authorization URL to out with a
// loopback redirect URI on a random port where nothing listens: after the
// user approves, the browser (on any machine) fails to load that page, and
// the user pastes the address bar's URL into in. A full URL (or its query)
// must carry this login's state (ErrStateMismatch otherwise) and passes the
// same iss and error checks as LoopbackLogin; a bare code is accepted as is.
// The code is exchanged with the PKCE verifier.
func (c *Client) PasteLogin(ctx context.Context, in io.Reader, out io.Writer) (*Token, error) {
	const op = "paste login"
	if err := checkEndpoints(c.Config.Endpoint.AuthURL, c.Config.Endpoint.TokenURL); err != nil {
		return nil, classify(op, err, nil)
	}
	host, err := c.redirectHost()
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = io.Discard
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(pastePortMax-pastePortMin+1))
	redirect := redirectURI(host, pastePortMin+int(n.Int64()))
	state := randomString(32)
	verifier := oauth2.GenerateVerifier()
	nonce := c.newNonce()

	fmt.Fprintf(out, "Open this URL in a browser on any machine and approve the access:\n\n    %s\n\n", c.AuthCodeURL(state, verifier, redirect, nonce))
	fmt.Fprintf(out, "The browser then goes to %s and shows an error such as \"site can't be reached\".\n", redirect)
	fmt.Fprintf(out, "That is expected: copy the whole address from the address bar and paste it here.\n\nURL: ")

	line, err := readLine(ctx, in)
	if err != nil {
		return nil, classify(op, err, nil)
	}
	code, err := c.pastedCode(line, state)
	if err != nil {
		return nil, err
	}
	return c.exchange(ctx, code, verifier, redirect, nonce)
}

// pastedCode extracts the code from a pasted redirect URL, query string or
// bare code.
func (c *Client) pastedCode(line, state string) (string, error) {
	const op = "paste login"
	line = strings.TrimSpace(line)
	if line == "" {
		return "", &Error{Op: op, Err: errEmptyPaste}
	}
	if !looksLikeRedirect(line) {
		// A bare code. Google's contain "/"; one copied out of an address
		// bar may still be percent-encoded.
		if code, err := url.QueryUnescape(line); err == nil {
			return code, nil
		}
		return line, nil
	}
	raw := line
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[i+1:]
	}
	if i := strings.IndexByte(raw, '#'); i >= 0 {
		raw = raw[:i]
	}
	q, err := url.ParseQuery(raw)
	if err != nil || (q.Get("code") == "" && q.Get("error") == "") {
		return "", &Error{Op: op, Err: ErrNoCode}
	}
	if !sameState(q.Get("state"), state) {
		return "", &Error{Op: op, Err: ErrStateMismatch}
	}
	return c.codeFromRedirect(q)
}

// looksLikeRedirect tells a pasted URL or query string from a bare code.
func looksLikeRedirect(s string) bool {
	if strings.Contains(s, "://") || strings.Contains(s, "?") {
		return true
	}
	for _, p := range []string{"code=", "state=", "error=", "iss="} {
		if strings.HasPrefix(s, p) || strings.Contains(s, "&"+p) {
			return true
		}
	}
	return false
}

// readLine reads one line from in, giving up when ctx ends.
func readLine(ctx context.Context, in io.Reader) (string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 0, 4096), pasteLineLimit)
		if sc.Scan() {
			ch <- result{line: sc.Text()}
			return
		}
		err := sc.Err()
		if err == nil {
			err = errEmptyPaste
		}
		ch <- result{err: err}
	}()
	select {
	case r := <-ch:
		return r.line, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
