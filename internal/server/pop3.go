package server

import (
	"context"
	"crypto/tls"
	"strings"

	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/sasl"
)

// pop3MaxCommand is the longest POP3 command line, CRLF included
// (RFC 2449 §4); RFC 5034 §4 sends a longer initial response after an
// empty challenge instead.
const pop3MaxCommand = 255

// pop3Login logs in to a POP3 server (RFC 1939): greeting, STLS (RFC 2595)
// unless TLS is implicit, CAPA (RFC 2449), AUTH (RFC 5034).
func pop3Login(ctx context.Context, w *wire, srv provider.Server, tc *tls.Config, user, token, prefer string) error {
	greet, err := w.line()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(greet, "+OK") {
		return &replyError{Step: "greeting", Reply: w.quote(greet), Temporary: true}
	}
	if !srv.ImplicitTLS {
		if _, err := pop3Command(w, "STLS", "starttls"); err != nil {
			return err
		}
		if err := w.startTLS(ctx, tc); err != nil {
			return err
		}
	}
	if _, err := pop3Command(w, "CAPA", "capability"); err != nil {
		return err
	}
	var mechs []string
	for range maxUpstreamLines {
		l, err := w.line()
		if err != nil {
			return err
		}
		if l == "." {
			break
		}
		f := strings.Fields(l)
		if len(f) > 0 && strings.EqualFold(f[0], "SASL") {
			mechs = append(mechs, f[1:]...)
		}
	}
	mech, err := sasl.Choose(mechs, prefer)
	if err != nil {
		return &replyError{Step: "capability", Reply: err.Error()}
	}
	ir, err := w.saslStart(mech, user, token, srv)
	if err != nil {
		return err
	}
	sentIR := true
	if line := "AUTH " + mech + " " + ir; len(line)+2 <= pop3MaxCommand {
		err = w.send(line)
	} else {
		sentIR = false
		err = w.send("AUTH " + mech)
	}
	if err != nil {
		return err
	}
	var challenge string
	for range 4 {
		l, err := w.line()
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(l, "+OK"):
			return nil
		case strings.HasPrefix(l, "+"):
			if !sentIR {
				sentIR = true
				if err := w.send(ir); err != nil {
					return err
				}
				continue
			}
			if challenge != "" {
				return &replyError{Step: "auth", Reply: "second error challenge"}
			}
			challenge = strings.TrimSpace(strings.TrimPrefix(l, "+"))
			if err := w.send(saslAbort(mech)); err != nil {
				return err
			}
		case strings.HasPrefix(l, "-ERR"):
			u := strings.ToUpper(l)
			if strings.Contains(u, "[SYS/TEMP]") || strings.Contains(u, "[IN-USE]") || strings.Contains(u, "[LOGIN-DELAY]") {
				return &replyError{Step: "auth", Reply: w.quote(l), Temporary: true}
			}
			return &refusedError{Reply: w.quote(l), Failure: failure(challenge)}
		default:
			return &replyError{Step: "auth", Reply: w.quote(l)}
		}
	}
	return errTooManyLine
}

// pop3Command sends cmd and reads its +OK status line.
func pop3Command(w *wire, cmd, step string) (string, error) {
	if err := w.send(cmd); err != nil {
		return "", err
	}
	l, err := w.line()
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(l, "+OK") {
		return "", &replyError{Step: step, Reply: w.quote(l), Temporary: strings.Contains(strings.ToUpper(l), "[SYS/TEMP]")}
	}
	return l, nil
}
