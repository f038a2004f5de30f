package oauth

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"rsc.io/qr"
)

// Device flow timing (RFC 8628 §3.2, §3.5).
const (
	deviceDefaultInterval = 5 * time.Second  // when the server names none
	deviceSlowDownStep    = 5 * time.Second  // added on every slow_down
	deviceDefaultLifetime = 10 * time.Minute // when the server names no expires_in
	deviceMaxBackoff      = 60 * time.Second // cap of the back-off after network errors
	deviceGrantType       = "urn:ietf:params:oauth:grant-type:device_code"
	qrQuietZone           = 2 // modules of light border; enough for phone cameras
)

// OpDeviceLogin is the Op of the errors of DeviceLogin's polling.
const OpDeviceLogin = "device login"

// DeviceOptions tune DeviceLogin. The zero value works.
type DeviceOptions struct {
	// QR draws verification_uri_complete (or verification_uri) as a QR code
	// with Unicode half blocks, light modules in the text colour, which suits
	// the usual light-on-dark terminal.
	QR bool
	// Wait bounds how long the user has to approve, when shorter than the
	// code's own lifetime; reaching it is ErrTimeout, where the code's
	// expiry is ErrExpiredToken. Zero means the code's lifetime.
	Wait time.Duration
	// Now and Sleep replace the clock and the wait between polls; nil means
	// time.Now and a timer that stops when ctx ends.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

func (o *DeviceOptions) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *DeviceOptions) sleep(ctx context.Context, d time.Duration) error {
	if o.Sleep != nil {
		return o.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DeviceLogin runs the device authorization grant (RFC 8628). It asks for a
// device code, shows the user code and verification URI on out (and a QR
// code when opts.QR is set), then polls the token endpoint at the server's
// interval, adding 5 s on every slow_down and backing off after network
// errors, printing a dot per poll. access_denied ends it with an *Error
// wrapping ErrAccessDenied; expiry (expired_token, or expires_in passing)
// with one wrapping ErrExpiredToken. Google rejects mail scopes in this flow
// with invalid_scope.
func (c *Client) DeviceLogin(ctx context.Context, out io.Writer, opts DeviceOptions) (*Token, error) {
	const op = OpDeviceLogin
	if err := checkEndpoints(c.Config.Endpoint.DeviceAuthURL, c.Config.Endpoint.TokenURL); err != nil {
		return nil, classify(op, err, nil)
	}
	if out == nil {
		out = io.Discard
	}
	da, err := c.Config.DeviceAuth(c.ctx(ctx))
	if err != nil {
		return nil, classify("device authorization", err, []string{c.Config.ClientSecret})
	}
	lifetime := deviceDefaultLifetime
	if !da.Expiry.IsZero() {
		lifetime = time.Until(da.Expiry)
	}
	wait := lifetime
	if opts.Wait > 0 && opts.Wait < lifetime {
		wait = opts.Wait
	}
	deadline, expires := opts.now().Add(wait), opts.now().Add(lifetime)
	if da.DeviceCode == "" || da.UserCode == "" || da.VerificationURI == "" {
		return nil, &Error{Op: "device authorization", Err: errBadResponse}
	}
	for _, u := range []string{da.VerificationURI, da.VerificationURIComplete} {
		if u != "" {
			if err := CheckEndpoint(u); err != nil {
				return nil, classify("device authorization", err, nil)
			}
		}
	}

	fmt.Fprintf(out, "To log in, visit\n\n    %s\n\nand enter the code\n\n    %s\n\n", da.VerificationURI, da.UserCode)
	if opts.QR {
		target := da.VerificationURIComplete
		if target == "" {
			target = da.VerificationURI
		}
		if err := writeQR(out, target); err == nil {
			fmt.Fprintf(out, "\nor scan this code with a phone.\n\n")
		}
	}
	if wait < lifetime {
		fmt.Fprintf(out, "Waiting %s for approval (the code itself expires in %s)", wait.Round(time.Second), lifetime.Round(time.Second))
	} else {
		fmt.Fprintf(out, "Waiting for approval (the code expires in %s)", lifetime.Round(time.Second))
	}

	interval := time.Duration(da.Interval) * time.Second
	if interval <= 0 {
		interval = deviceDefaultInterval
	}
	form := url.Values{"grant_type": {deviceGrantType}, "device_code": {da.DeviceCode}}
	wait = interval
	for {
		if !opts.now().Before(deadline) {
			fmt.Fprintln(out)
			if deadline.Before(expires) {
				return nil, &Error{Op: op, Kind: Permanent, Err: ErrTimeout}
			}
			return nil, &Error{Op: op, Kind: Permanent, Code: "expired_token", Err: ErrExpiredToken}
		}
		if err := opts.sleep(ctx, wait); err != nil {
			fmt.Fprintln(out)
			return nil, classify(op, err, nil)
		}
		tok, err := c.tokenRequest(ctx, op, form, c.Config.Scopes, time.Now(), da.DeviceCode)
		if err == nil {
			fmt.Fprintln(out, " approved.")
			return tok, nil
		}
		e := Classify(err)
		switch {
		case e.Code == "authorization_pending":
			wait = interval
		case e.Code == "slow_down":
			interval += deviceSlowDownStep
			wait = interval
		case e.Kind == Transient:
			// RFC 8628 §3.5: back off after connection problems.
			wait = min(2*wait, deviceMaxBackoff)
			wait = max(wait, interval)
		default:
			fmt.Fprintln(out)
			return nil, e
		}
		fmt.Fprint(out, ".")
	}
}

// writeQR draws text as a QR code, two modules per character row.
func writeQR(w io.Writer, text string) error {
	code, err := qr.Encode(text, qr.L)
	if err != nil {
		return err
	}
	lo, hi := -qrQuietZone, code.Size+qrQuietZone
	light := func(x, y int) bool { return y < hi && !code.Black(x, y) }
	var b strings.Builder
	for y := lo; y < hi; y += 2 {
		for x := lo; x < hi; x++ {
			top, bottom := light(x, y), light(x, y+1)
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteString(" ")
			}
		}
		b.WriteString("\n")
	}
	_, err = io.WriteString(w, b.String())
	return err
}
