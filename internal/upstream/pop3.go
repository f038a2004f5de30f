package upstream

import (
	"context"
	"errors"
	"net"

	"github.com/mailkey/mailkey/internal/upstream/pop3"
)

// LoginPOP3 logs in to a POP3 server (RFC 1939) with the wire client of
// package pop3: the greeting, STLS (RFC 2595) unless TLS is implicit, CAPA
// (RFC 2449), then AUTH (RFC 5034), with the initial response on the
// command line when it fits in 255 octets and after an empty challenge
// otherwise. The session holds the client, to go on with.
func LoginPOP3(ctx context.Context, o *Options) (*Session, error) {
	return login(ctx, o, protocol{run: pop3Login})
}

func pop3Login(ctx context.Context, w *wire) (*Session, error) {
	c, err := pop3.NewClient(w.io)
	if err != nil {
		return nil, w.pop3Reply("greeting", err)
	}
	if !w.o.Server.ImplicitTLS {
		err := c.StartTLSWith(func() (net.Conn, error) {
			if err := w.upgrade(ctx); err != nil {
				return nil, err
			}
			return w.io, nil
		})
		if err != nil {
			return nil, w.pop3Reply("starttls", err)
		}
	}
	w.secured()
	if _, err := c.Capa(); err != nil {
		return nil, w.pop3Reply("capability", err)
	}
	mech, client, _, err := w.start(ctx, Capabilities{Mechanisms: c.SASLMechanisms()})
	if err != nil {
		return nil, err
	}
	if err := c.Auth(client, pop3.AuthOptions{}); err != nil {
		e := w.pop3Reply("auth", err)
		if re, ok := e.(*ReplyError); ok {
			re.Refused, re.Failure = !re.Temporary, failure(client)
		}
		return nil, e
	}
	conn, r := c.Stream()
	return &Session{Conn: conn, Reader: r, Mechanism: mech, POP3: c}, nil
}

// pop3Reply turns the client's *pop3.Error into a *ReplyError; other
// errors (I/O, a malformed answer, an injection before STLS) are returned
// as they are.
func (w *wire) pop3Reply(step string, err error) error {
	var pe *pop3.Error
	if !errors.As(err, &pe) {
		if errors.Is(err, pop3.ErrSTLSInjection) {
			return ErrBufferedBeforeTLS
		}
		return err
	}
	l := w.quote(pe.Line)
	return &ReplyError{Step: step, Line: l, Reply: l, Code: pe.Code, Greeting: pe.Command == "", Temporary: pe.Temporary() || pe.Command == ""}
}
