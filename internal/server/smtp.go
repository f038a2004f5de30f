package server

import (
	"context"
	"crypto/tls"
	"strings"

	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/sasl"
)

// smtpLogin logs in to a submission server (RFC 6409, RFC 5321): greeting,
// the client's EHLO, STARTTLS (RFC 3207) unless TLS is implicit and EHLO
// again, then AUTH with an initial response (RFC 4954).
func smtpLogin(ctx context.Context, w *wire, srv provider.Server, tc *tls.Config, ehlo, user, token, prefer string) error {
	if code, l, err := smtpReply(w); err != nil {
		return err
	} else if code != 220 {
		return &replyError{Step: "greeting", Reply: w.quote(l), Temporary: true}
	}
	ehlo = upstreamEHLO(ehlo)
	exts, err := smtpEHLO(w, ehlo)
	if err != nil {
		return err
	}
	if !srv.ImplicitTLS {
		if err := w.send("STARTTLS"); err != nil {
			return err
		}
		code, l, err := smtpReply(w)
		if err != nil {
			return err
		}
		if code != 220 {
			return &replyError{Step: "starttls", Reply: w.quote(l), Temporary: code/100 == 4}
		}
		if err := w.startTLS(ctx, tc); err != nil {
			return err
		}
		if exts, err = smtpEHLO(w, ehlo); err != nil { // RFC 3207 §4.2
			return err
		}
	}
	var mechs []string
	for _, e := range exts {
		f := strings.Fields(e)
		if len(f) > 0 && strings.EqualFold(f[0], "AUTH") {
			mechs = append(mechs, f[1:]...)
		}
	}
	mech, err := sasl.Choose(mechs, prefer)
	if err != nil {
		return &replyError{Step: "ehlo", Reply: err.Error()}
	}
	ir, err := w.saslStart(mech, user, token, srv)
	if err != nil {
		return err
	}
	if err := w.send("AUTH " + mech + " " + ir); err != nil {
		return err
	}
	var challenge string
	for range 4 {
		code, l, err := smtpReply(w)
		if err != nil {
			return err
		}
		switch {
		case code == 235:
			return nil
		case code == 334 && challenge == "":
			challenge = strings.TrimSpace(l[min(len(l), 4):])
			if err := w.send(saslAbort(mech)); err != nil {
				return err
			}
		case code/100 == 4:
			return &replyError{Step: "auth", Reply: w.quote(l), Temporary: true}
		case code == 535 || code == 534 || code == 530:
			return &refusedError{Reply: w.quote(l), Failure: failure(challenge)}
		default:
			return &replyError{Step: "auth", Reply: w.quote(l)}
		}
	}
	return errTooManyLine
}

// upstreamEHLO is the greeting to send upstream: the client's own EHLO
// line, a HELO turned into EHLO (AUTH needs ESMTP), or a default.
func upstreamEHLO(client string) string {
	verb, arg, _ := strings.Cut(strings.TrimSpace(client), " ")
	arg = strings.TrimSpace(arg)
	if arg == "" || strings.ContainsAny(arg, "\r\n") {
		arg = "localhost"
	}
	if strings.EqualFold(verb, "EHLO") {
		return client
	}
	return "EHLO " + arg
}

// smtpEHLO sends the EHLO line and returns the extension lines.
func smtpEHLO(w *wire, ehlo string) ([]string, error) {
	if err := w.send(ehlo); err != nil {
		return nil, err
	}
	var exts []string
	for i := range maxUpstreamLines {
		l, err := w.line()
		if err != nil {
			return nil, err
		}
		if len(l) < 3 || !strings.HasPrefix(l, "250") {
			return nil, &replyError{Step: "ehlo", Reply: w.quote(l), Temporary: strings.HasPrefix(l, "4")}
		}
		if i > 0 && len(l) > 4 {
			exts = append(exts, l[4:])
		}
		if len(l) == 3 || l[3] == ' ' {
			return exts, nil
		}
	}
	return nil, errTooManyLine
}

// smtpReply reads a reply, multi-line or not, and returns its code and
// last line.
func smtpReply(w *wire) (int, string, error) {
	for range maxUpstreamLines {
		l, err := w.line()
		if err != nil {
			return 0, "", err
		}
		if len(l) < 3 {
			return 0, "", &replyError{Step: "reply", Reply: w.quote(l)}
		}
		code := 0
		for _, c := range l[:3] {
			if c < '0' || c > '9' {
				return 0, "", &replyError{Step: "reply", Reply: w.quote(l)}
			}
			code = code*10 + int(c-'0')
		}
		if len(l) == 3 || l[3] != '-' {
			return code, l, nil
		}
	}
	return 0, "", errTooManyLine
}
