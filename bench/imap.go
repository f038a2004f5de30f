package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// The benchmark's IMAP client (RFC 9051) speaks the raw protocol, so that the client's own cost is
// the same whether it talks to the proxy or to Dovecot: one command at a time, every response
// read to its end, literals copied into one reused buffer.

const (
	// readBuf is the client's socket read buffer, large enough for a TLS record.
	readBuf = 64 << 10
	// maxLine bounds one response line without its literals.
	maxLine = 64 << 10
	// maxLiteral bounds one literal: the bulk mailbox's largest message is under 1 MB.
	maxLiteral = 64 << 20
)

// errRefused wraps a server's NO or BAD.
var errRefused = errors.New("imap: command refused")

// imapConn is one client connection.
type imapConn struct {
	conn net.Conn
	r    *bufio.Reader
	tag  int
	lit  []byte // reused literal buffer
	tls  string // negotiated TLS version, "" without TLS
}

// dialIMAP connects to addr over TCP from local (nil: any loopback address the kernel picks),
// starts TLS at once when tc is not nil, and reads the greeting.
func dialIMAP(ctx context.Context, addr string, local net.Addr, tc *tls.Config) (*imapConn, error) {
	d := net.Dialer{LocalAddr: local}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if tc != nil {
		tlsConn := tls.Client(conn, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
		}
		conn = tlsConn
	}
	c := newIMAPConn(conn)
	if tc, ok := conn.(*tls.Conn); ok {
		c.tls = tls.VersionName(tc.ConnectionState().Version)
	}
	line, err := c.readLine()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("greeting from %s: %w", addr, err)
	}
	if !bytes.HasPrefix(line, []byte("* OK")) && !bytes.HasPrefix(line, []byte("* PREAUTH")) {
		conn.Close()
		return nil, fmt.Errorf("greeting from %s: %q", addr, truncate(line))
	}
	return c, nil
}

func newIMAPConn(conn net.Conn) *imapConn {
	return &imapConn{conn: conn, r: bufio.NewReaderSize(conn, readBuf)}
}

// setDeadline bounds the I/O that follows; the zero time removes the bound.
func (c *imapConn) setDeadline(t time.Time) { c.conn.SetDeadline(t) }

func (c *imapConn) Close() error { return c.conn.Close() }

// readLine reads one line, CRLF included.
func (c *imapConn) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err == nil {
		return line, nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	long := append([]byte(nil), line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		if len(long) > maxLine {
			return nil, errors.New("response line too long")
		}
		line, err = c.r.ReadSlice('\n')
		long = append(long, line...)
	}
	return long, err
}

// literalSize returns n when line ends with a literal announcement {n}CRLF.
func literalSize(line []byte) (int, bool) {
	line = bytes.TrimSuffix(line, []byte("\r\n"))
	if !bytes.HasSuffix(line, []byte("}")) {
		return 0, false
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(line[i+1 : len(line)-1]))
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// response is what one command brought back.
type response struct {
	status   string   // OK, NO or BAD
	text     string   // the tagged line, without the tag and CRLF
	untagged []string // untagged lines, literals left out (kept only when asked)
	literals int      // literals read
	bytes    int64    // total literal length
}

// command sends one tagged command and reads every response up to its tagged one. Literal
// bodies are copied into the reused buffer and, when sum is not nil, hashed. keep keeps the
// untagged lines. A continuation request is answered with an empty line, which cancels a
// SASL exchange. A NO or BAD is returned as an error wrapping errRefused; it quotes the
// server's reply, never the command.
func (c *imapConn) command(cmd string, sum hash.Hash, keep bool) (*response, error) {
	c.tag++
	tag := "b" + strconv.Itoa(c.tag)
	if _, err := io.WriteString(c.conn, tag+" "+cmd+"\r\n"); err != nil {
		return nil, err
	}
	return c.readResponse(tag, sum, keep)
}

func (c *imapConn) readResponse(tag string, sum hash.Hash, keep bool) (*response, error) {
	resp := &response{}
	var untagged strings.Builder
	for {
		line, err := c.readLine()
		if err != nil {
			return nil, err
		}
		if bytes.HasPrefix(line, []byte("+")) {
			if _, err := io.WriteString(c.conn, "\r\n"); err != nil {
				return nil, err
			}
			continue
		}
		for {
			n, ok := literalSize(line)
			if !ok {
				break
			}
			if n > maxLiteral {
				return nil, fmt.Errorf("literal of %d bytes is larger than %d", n, maxLiteral)
			}
			if cap(c.lit) < n {
				c.lit = make([]byte, n)
			}
			if _, err := io.ReadFull(c.r, c.lit[:n]); err != nil {
				return nil, err
			}
			if sum != nil {
				sum.Write(c.lit[:n])
			}
			resp.literals++
			resp.bytes += int64(n)
			if keep {
				untagged.Write(line)
			}
			if line, err = c.readLine(); err != nil {
				return nil, err
			}
		}
		if rest, ok := bytes.CutPrefix(line, []byte(tag+" ")); ok {
			text := strings.TrimRight(string(rest), "\r\n")
			resp.status, _, _ = strings.Cut(text, " ")
			resp.text = text
			if keep {
				for l := range strings.SplitSeq(untagged.String(), "\n") {
					if l = strings.TrimRight(l, "\r"); l != "" {
						resp.untagged = append(resp.untagged, l)
					}
				}
			}
			if resp.status != "OK" {
				return resp, fmt.Errorf("%w: %s", errRefused, truncate(rest))
			}
			return resp, nil
		}
		if keep {
			untagged.Write(line)
		}
	}
}

// login sends LOGIN with the user name and password as quoted strings.
func (c *imapConn) login(user, password string) error {
	u, err := quote(user)
	if err != nil {
		return err
	}
	p, err := quote(password)
	if err != nil {
		return errors.New("the password cannot be sent as a quoted string")
	}
	_, err = c.command("LOGIN "+u+" "+p, nil, false)
	return err
}

// authXOAUTH2 sends AUTHENTICATE XOAUTH2 with the initial response (RFC 4959 SASL-IR).
func (c *imapConn) authXOAUTH2(user, token string) error {
	ir := base64.StdEncoding.EncodeToString([]byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01"))
	_, err := c.command("AUTHENTICATE XOAUTH2 "+ir, nil, false)
	return err
}

// examine opens mailbox read-only and returns its EXISTS and UIDNEXT.
func (c *imapConn) examine(mailbox string) (exists, uidNext int, err error) {
	q, err := quote(mailbox)
	if err != nil {
		return 0, 0, err
	}
	resp, err := c.command("EXAMINE "+q, nil, true)
	if err != nil {
		return 0, 0, err
	}
	for _, l := range resp.untagged {
		f := strings.Fields(l)
		if len(f) == 3 && f[0] == "*" && f[2] == "EXISTS" {
			exists, _ = strconv.Atoi(f[1])
		}
		if i := strings.Index(l, "[UIDNEXT "); i >= 0 {
			v, _, _ := strings.Cut(l[i+len("[UIDNEXT "):], "]")
			uidNext, _ = strconv.Atoi(v)
		}
	}
	if uidNext == 0 {
		return exists, 0, fmt.Errorf("EXAMINE %s: no UIDNEXT in the reply", mailbox)
	}
	return exists, uidNext, nil
}

// fetchAll fetches BODY.PEEK[] of every UID below uidNext in batches of batch UIDs, one
// command at a time, and returns the number of message literals and their total size.
func (c *imapConn) fetchAll(uidNext, batch int, sum hash.Hash) (msgs int, n int64, err error) {
	for lo := 1; lo < uidNext; lo += batch {
		hi := min(lo+batch-1, uidNext-1)
		resp, err := c.command(fmt.Sprintf("UID FETCH %d:%d (BODY.PEEK[])", lo, hi), sum, false)
		if err != nil {
			return msgs, n, fmt.Errorf("UID FETCH %d:%d: %w", lo, hi, err)
		}
		msgs += resp.literals
		n += resp.bytes
	}
	return msgs, n, nil
}

// logout sends LOGOUT and waits for its reply.
func (c *imapConn) logout() error {
	_, err := c.command("LOGOUT", nil, false)
	return err
}

// quote makes s an IMAP quoted string.
func quote(s string) (string, error) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return "", errors.New("string cannot be quoted")
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`, nil
}

// truncate shortens a server reply for an error message.
func truncate(b []byte) string {
	s := strings.TrimRight(string(b), "\r\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
