package server

import (
	"context"
	"crypto/tls"
	"strings"

	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/sasl"
)

// imapLogin logs in to an IMAP server (RFC 9051, RFC 3501): greeting,
// STARTTLS (RFC 2595) unless TLS is implicit, CAPABILITY, AUTHENTICATE
// with SASL-IR (RFC 4959) when offered. It returns the capabilities the
// server announces after login.
func imapLogin(ctx context.Context, w *wire, srv provider.Server, tc *tls.Config, user, token, prefer string) ([]string, error) {
	greet, err := w.line()
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasPrefix(greet, "* OK"):
	case strings.HasPrefix(greet, "* PREAUTH"):
		return nil, &replyError{Step: "greeting", Reply: "server skipped authentication (PREAUTH)"}
	default:
		return nil, &replyError{Step: "greeting", Reply: w.quote(greet), Temporary: true}
	}
	caps := capsInCode(greet)
	if !srv.ImplicitTLS {
		if _, _, err := imapCommand(w, "m0", "STARTTLS", "starttls"); err != nil {
			return nil, err
		}
		if err := w.startTLS(ctx, tc); err != nil {
			return nil, err
		}
		caps = nil // RFC 2595 §3.1: forget what was said in plaintext
	}
	if caps == nil {
		if caps, _, err = imapCommand(w, "m1", "CAPABILITY", "capability"); err != nil {
			return nil, err
		}
	}
	var mechs []string
	saslIR := false
	for _, c := range caps {
		u := strings.ToUpper(c)
		if m, ok := strings.CutPrefix(u, "AUTH="); ok {
			mechs = append(mechs, m)
		}
		if u == "SASL-IR" {
			saslIR = true
		}
	}
	mech, err := sasl.Choose(mechs, prefer)
	if err != nil {
		return nil, &replyError{Step: "capability", Reply: err.Error()}
	}
	ir, err := w.saslStart(mech, user, token, srv)
	if err != nil {
		return nil, err
	}
	if saslIR {
		err = w.send("m2 AUTHENTICATE " + mech + " " + ir)
	} else {
		err = w.send("m2 AUTHENTICATE " + mech)
	}
	if err != nil {
		return nil, err
	}
	sentIR := saslIR
	var challenge string
	var after []string
	for range maxUpstreamLines {
		l, err := w.line()
		if err != nil {
			return nil, err
		}
		switch {
		case strings.HasPrefix(l, "+"):
			if !sentIR {
				sentIR = true
				if err := w.send(ir); err != nil {
					return nil, err
				}
				continue
			}
			if challenge != "" {
				return nil, &replyError{Step: "auth", Reply: "second error challenge"}
			}
			challenge = strings.TrimSpace(strings.TrimPrefix(l, "+"))
			if err := w.send(saslAbort(mech)); err != nil {
				return nil, err
			}
		case strings.HasPrefix(l, "* "):
			if c := untaggedCaps(l); c != nil {
				after = c
			}
		case strings.HasPrefix(l, "m2 "):
			status, _, _ := strings.Cut(strings.TrimPrefix(l, "m2 "), " ")
			switch strings.ToUpper(status) {
			case "OK":
				if c := capsInCode(l); c != nil {
					after = c
				}
				if after == nil {
					if after, _, err = imapCommand(w, "m3", "CAPABILITY", "capability"); err != nil {
						return nil, err
					}
				}
				return after, nil
			case "NO":
				if strings.Contains(strings.ToUpper(l), "[UNAVAILABLE]") {
					return nil, &replyError{Step: "auth", Reply: w.quote(l), Temporary: true}
				}
				return nil, &refusedError{Reply: w.quote(l), Failure: failure(challenge)}
			default:
				return nil, &replyError{Step: "auth", Reply: w.quote(l)}
			}
		default:
			return nil, &replyError{Step: "auth", Reply: w.quote(l)}
		}
	}
	return nil, errTooManyLine
}

// imapCommand sends "tag cmd" and reads up to its tagged OK, collecting
// untagged CAPABILITY data.
func imapCommand(w *wire, tag, cmd, step string) (caps []string, final string, err error) {
	if err := w.send(tag + " " + cmd); err != nil {
		return nil, "", err
	}
	for range maxUpstreamLines {
		l, err := w.line()
		if err != nil {
			return nil, "", err
		}
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			if !strings.HasPrefix(strings.ToUpper(rest), "OK") {
				return nil, "", &replyError{Step: step, Reply: w.quote(l), Temporary: strings.Contains(strings.ToUpper(l), "[UNAVAILABLE]")}
			}
			if c := capsInCode(l); c != nil && caps == nil {
				caps = c
			}
			return caps, l, nil
		}
		if c := untaggedCaps(l); c != nil {
			caps = c
		}
	}
	return nil, "", errTooManyLine
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
	i := strings.Index(strings.ToUpper(l), "[CAPABILITY ")
	if i < 0 {
		return nil
	}
	rest := l[i+len("[CAPABILITY "):]
	j := strings.IndexByte(rest, ']')
	if j < 0 {
		return nil
	}
	return strings.Fields(rest[:j])
}
