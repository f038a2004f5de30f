package upstream

import (
	"context"
	"encoding/base64"
	"strings"
)

// LoginIMAP logs in to an IMAP server (RFC 9051, RFC 3501): the greeting,
// STARTTLS (RFC 2595) unless TLS is implicit, CAPABILITY, then
// AUTHENTICATE, with the initial response on the command line when the
// server offers SASL-IR (RFC 4959). The session holds the capabilities the
// server announces after login.
func LoginIMAP(ctx context.Context, o *Options) (*Session, error) {
	return login(ctx, o, protocol{alpn: "imap", run: imapLogin})
}

func imapLogin(ctx context.Context, w *wire) (*Session, error) {
	greet, err := w.line()
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasPrefix(greet, "* OK"):
	case strings.HasPrefix(greet, "* PREAUTH"):
		return nil, &ReplyError{Step: "greeting", Line: "server skipped authentication (PREAUTH)"}
	default:
		e := w.imapReply("greeting", greet)
		e.Greeting, e.Temporary = true, true
		return nil, e
	}
	caps := capsInCode(greet)
	if !w.o.Server.ImplicitTLS {
		if _, err := imapCommand(w, "m0", "STARTTLS", "starttls"); err != nil {
			return nil, err
		}
		if err := w.startTLS(ctx); err != nil {
			return nil, err
		}
		caps = nil // RFC 2595 §3.1: forget what was said in plaintext
	}
	w.secured()
	if caps == nil {
		if caps, err = imapCommand(w, "m1", "CAPABILITY", "capability"); err != nil {
			return nil, err
		}
	}
	var offer Capabilities
	for _, c := range caps {
		u := strings.ToUpper(c)
		if m, ok := strings.CutPrefix(u, "AUTH="); ok {
			offer.Mechanisms = append(offer.Mechanisms, m)
		}
		offer.SASLIR = offer.SASLIR || u == "SASL-IR"
	}
	mech, client, ir, err := w.start(ctx, offer)
	if err != nil {
		return nil, err
	}
	cmd := "m2 AUTHENTICATE " + mech
	if offer.SASLIR {
		cmd += " " + imapIR(ir)
	}
	if err := w.send(cmd); err != nil {
		return nil, err
	}
	sentIR := offer.SASLIR
	var after []string
	for range maxLines {
		l, err := w.line()
		if err != nil {
			return nil, err
		}
		switch {
		case strings.HasPrefix(l, "+") && !sentIR:
			sentIR = true
			if err := w.send(imapIR(ir)); err != nil {
				return nil, err
			}
		case strings.HasPrefix(l, "+"):
			if err := w.answer(client, strings.TrimPrefix(l, "+")); err != nil {
				return nil, err
			}
		case strings.HasPrefix(l, "* "):
			if c := untaggedCaps(l); c != nil {
				after = c
			}
		case strings.HasPrefix(l, "m2 "):
			e := w.imapReply("auth", l)
			e.Failure = failure(client)
			status, _, _ := strings.Cut(strings.TrimPrefix(l, "m2 "), " ")
			switch strings.ToUpper(status) {
			case "OK":
				if c := capsInCode(l); c != nil {
					after = c
				}
				if after == nil {
					if after, err = imapCommand(w, "m3", "CAPABILITY", "capability"); err != nil {
						return nil, err
					}
				}
				return &Session{Capabilities: after, Mechanism: mech}, nil
			case "NO":
				e.Refused = !e.Temporary
			}
			return nil, e
		default:
			return nil, w.imapReply("auth", l)
		}
	}
	return nil, errTooManyLine
}

// imapIR is an initial response on the wire: base64, "=" when empty
// (RFC 4959 §3).
func imapIR(ir []byte) string {
	if len(ir) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(ir)
}

// imapCommand sends "tag cmd" and reads up to its tagged OK, collecting
// untagged CAPABILITY data.
func imapCommand(w *wire, tag, cmd, step string) (caps []string, err error) {
	if err := w.send(tag + " " + cmd); err != nil {
		return nil, err
	}
	for range maxLines {
		l, err := w.line()
		if err != nil {
			return nil, err
		}
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			if !strings.HasPrefix(strings.ToUpper(rest), "OK") {
				return nil, w.imapReply(step, l)
			}
			if c := capsInCode(l); c != nil && caps == nil {
				caps = c
			}
			return caps, nil
		}
		if c := untaggedCaps(l); c != nil {
			caps = c
		}
	}
	return nil, errTooManyLine
}

// untaggedCaps parses "* CAPABILITY a b c"; nil when l is not one.
func untaggedCaps(l string) []string {
	rest, ok := strings.CutPrefix(l, "* ")
	if !ok {
		return nil
	}
	if len(rest) < len("CAPABILITY") || !strings.EqualFold(rest[:len("CAPABILITY")], "CAPABILITY") {
		return nil
	}
	return strings.Fields(rest[len("CAPABILITY"):])
}

// capsInCode parses a [CAPABILITY …] response code in a status line; nil
// when there is none.
func capsInCode(l string) []string {
	const code = "[CAPABILITY "
	// Searched in l itself: an upper-cased copy may differ in length
	// (invalid UTF-8 becomes U+FFFD), so its offsets do not fit l.
	i := -1
	for k := 0; k+len(code) <= len(l); k++ {
		if strings.EqualFold(l[k:k+len(code)], code) {
			i = k
			break
		}
	}
	if i < 0 {
		return nil
	}
	rest := l[i+len(code):]
	j := strings.IndexByte(rest, ']')
	if j < 0 {
		return nil
	}
	return strings.Fields(rest[:j])
}
