package upstream

import (
	"bufio"
	"context"
	"encoding/base64"
	"net/textproto"
	"strconv"
	"strings"
)

// LoginSMTP logs in to a submission server (RFC 6409, RFC 5321): the
// greeting, the mail client's EHLO, STARTTLS (RFC 3207) unless TLS is
// implicit and EHLO again, then AUTH with the initial response on the
// command line (RFC 4954).
func LoginSMTP(ctx context.Context, o *Options) (*Session, error) {
	return login(ctx, o, protocol{run: smtpLogin})
}

func smtpLogin(ctx context.Context, w *wire) (*Session, error) {
	if code, l, err := smtpReply(w); err != nil {
		return nil, err
	} else if code != 220 {
		e := w.smtpReplyError("greeting", code, l)
		e.Greeting, e.Temporary = true, true
		return nil, e
	}
	ehlo := upstreamEHLO(w.o.EHLO)
	exts, err := smtpEHLO(w, ehlo)
	if err != nil {
		return nil, err
	}
	if !w.o.Server.ImplicitTLS {
		if _, ok := extension(exts, "STARTTLS"); !ok {
			return nil, ErrNoSTARTTLS
		}
		if err := smtpCommand(w, "STARTTLS", "starttls", 220); err != nil {
			return nil, err
		}
		if err := w.startTLS(ctx); err != nil {
			return nil, err
		}
		if exts, err = smtpEHLO(w, ehlo); err != nil { // RFC 3207 §4.2
			return nil, err
		}
	}
	w.secured()
	var offer Capabilities
	if params, ok := extension(exts, "AUTH"); ok {
		offer.SMTPAuth, offer.Mechanisms = true, strings.Fields(params)
	}
	if params, ok := extension(exts, "SIZE"); ok {
		offer.MaxSize, _ = strconv.ParseInt(params, 10, 64)
	}
	mech, client, ir, err := w.start(ctx, offer)
	if err != nil {
		return nil, err
	}
	if err := w.send("AUTH " + mech + " " + base64.StdEncoding.EncodeToString(ir)); err != nil {
		return nil, err
	}
	for range maxLines {
		code, l, err := smtpReply(w)
		if err != nil {
			return nil, err
		}
		switch {
		case code == 235:
			return &Session{Mechanism: mech}, nil
		case code == 334:
			if err := w.answer(client, l[min(len(l), 4):]); err != nil {
				return nil, err
			}
			continue
		}
		e := w.smtpReplyError("auth", code, l)
		e.Refused, e.Failure = code == 535 || code == 534 || code == 530, failure(client)
		return nil, e
	}
	return nil, errTooManyLine
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

// extension finds an EHLO keyword and returns its parameters.
func extension(exts []string, name string) (string, bool) {
	for _, e := range exts {
		kw, params, _ := strings.Cut(e, " ")
		if strings.EqualFold(kw, name) {
			return strings.TrimSpace(params), true
		}
	}
	return "", false
}

// smtpEHLO sends the EHLO line and returns the extension lines.
func smtpEHLO(w *wire, ehlo string) ([]string, error) {
	if err := w.send(ehlo); err != nil {
		return nil, err
	}
	var exts []string
	for i := range maxLines {
		l, err := w.line()
		if err != nil {
			return nil, err
		}
		if len(l) < 3 || !strings.HasPrefix(l, "250") {
			code, _ := strconv.Atoi(l[:min(len(l), 3)])
			return nil, w.smtpReplyError("ehlo", code, l)
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

// smtpCommand sends a command and expects the reply code want.
func smtpCommand(w *wire, cmd, step string, want int) error {
	if err := w.send(cmd); err != nil {
		return err
	}
	code, l, err := smtpReply(w)
	if err != nil {
		return err
	}
	if code != want {
		return w.smtpReplyError(step, code, l)
	}
	return nil
}

// smtpReply reads a reply, multi-line or not, and returns its code and
// last line.
func smtpReply(w *wire) (int, string, error) {
	for range maxLines {
		l, err := w.line()
		if err != nil {
			return 0, "", err
		}
		code, err := strconv.Atoi(l[:min(len(l), 3)])
		if len(l) < 3 || err != nil || code < 100 {
			return 0, "", &ReplyError{Step: "reply", Line: w.quote(l)}
		}
		if len(l) == 3 || l[3] != '-' {
			return code, l, nil
		}
	}
	return 0, "", errTooManyLine
}

// SMTPCommand sends one command on a logged-in SMTP session (MAIL FROM,
// RCPT TO, RSET) and expects a 250; another reply is a *ReplyError.
func (s *Session) SMTPCommand(cmd string) error {
	return smtpCommand(s.w, cmd, "command", 250)
}

// SMTPData sends a message after MAIL FROM and RCPT TO (RFC 5321 §4.1.1.4):
// DATA, the dot-stuffed message, and the final dot. It returns the
// server's text of acceptance.
func (s *Session) SMTPData(msg []byte) (string, error) {
	if err := smtpCommand(s.w, "DATA", "data", 354); err != nil {
		return "", err
	}
	dw := textproto.NewWriter(bufio.NewWriter(s.w.io)).DotWriter()
	if _, err := dw.Write(msg); err != nil {
		return "", err
	}
	if err := dw.Close(); err != nil {
		return "", err
	}
	code, l, err := smtpReply(s.w)
	if err != nil {
		return "", err
	}
	if code != 250 {
		return "", s.w.smtpReplyError("data", code, l)
	}
	return s.w.smtpReplyError("data", code, l).Reply, nil
}
