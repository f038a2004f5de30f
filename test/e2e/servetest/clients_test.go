package servetest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/mailkey/mailkey/internal/testwait"
)

// clientsPy logs in through the proxy with Python's imaplib, poplib and smtplib:
//
//	clients.py imap MODE METHOD HOST PORT USER PASSWORD CAFILE
//	clients.py pop3 MODE METHOD HOST PORT USER PASSWORD CAFILE
//	clients.py smtp MODE METHOD HOST PORT USER PASSWORD CAFILE FROM TO
//
// MODE is plain, starttls or ssl; METHOD is login or plain (IMAP), user or plain (POP3),
// plain or login (SMTP). poplib has no AUTH helper: AUTH PLAIN goes through _shortcmd.
const clientsPy = `import base64, imaplib, poplib, smtplib, ssl, sys

proto, mode, method, host, port, user, pw, cafile = sys.argv[1:9]
port = int(port)
ctx = ssl.create_default_context(cafile=cafile)
plain = base64.b64encode(('\0' + user + '\0' + pw).encode()).decode()

if proto == 'imap':
    if mode == 'ssl':
        M = imaplib.IMAP4_SSL(host, port, ssl_context=ctx)
    else:
        M = imaplib.IMAP4(host, port)
        if mode == 'starttls':
            M.starttls(ssl_context=ctx)
    if method == 'login':
        M.login(user, pw)
    else:
        M.authenticate('PLAIN', lambda _: ('\0' + user + '\0' + pw).encode())
    typ, data = M.select('INBOX')
    assert typ == 'OK', data
    print('INBOX', data[0].decode())
    M.logout()
elif proto == 'pop3':
    if mode == 'ssl':
        P = poplib.POP3_SSL(host, port, context=ctx)
    else:
        P = poplib.POP3(host, port)
        if mode == 'starttls':
            P.stls(context=ctx)
    if method == 'user':
        P.user(user)
        P.pass_(pw)
    else:
        P._shortcmd('AUTH PLAIN ' + plain)
    print('STAT', P.stat())
    P.quit()
elif proto == 'smtp':
    sender, to = sys.argv[9:11]
    if mode == 'ssl':
        S = smtplib.SMTP_SSL(host, port, context=ctx)
    else:
        S = smtplib.SMTP(host, port)
        if mode == 'starttls':
            S.starttls(context=ctx)
    S.ehlo('client.example.test')
    S.user, S.password = user, pw
    if method == 'plain':
        S.auth('PLAIN', S.auth_plain)
    else:
        S.auth('LOGIN', S.auth_login, initial_response_ok=False)
    msg = 'From: %s\r\nTo: %s\r\nSubject: through the proxy (%s, %s)\r\n\r\nhello\r\n' % (sender, to, mode, method)
    S.sendmail(sender, [to], msg)
    S.quit()
    print('sent')
`

// bulkPy hashes every message body of INBOX, fetched in batches of 500 UIDs:
//
//	bulk.py HOST PORT proxy USER PASSWORD     LOGIN through the proxy
//	bulk.py HOST PORT direct USER TOKEN       AUTHENTICATE XOAUTH2 at the server
//
// It prints the message count and one SHA-256 over every (UID, SHA-256 of the body).
const bulkPy = `import hashlib, imaplib, re, sys

host, port, how, user, secret = sys.argv[1:6]
M = imaplib.IMAP4(host, int(port))
if how == 'proxy':
    M.login(user, secret)
else:
    M.authenticate('XOAUTH2', lambda _: ('user=%s\x01auth=Bearer %s\x01\x01' % (user, secret)).encode())
typ, data = M.select('INBOX', readonly=True)
typ, data = M.uid('search', None, 'ALL')
uids = [int(u) for u in data[0].split()]
total = hashlib.sha256()
n = 0
for i in range(0, len(uids), 500):
    batch = uids[i:i+500]
    typ, data = M.uid('fetch', '%d:%d' % (batch[0], batch[-1]), '(BODY.PEEK[])')
    assert typ == 'OK', data
    for item in data:
        if not isinstance(item, tuple):
            continue
        uid = re.search(rb'UID (\d+)', item[0]).group(1)
        total.update(uid + b' ' + hashlib.sha256(item[1]).hexdigest().encode() + b'\n')
        n += 1
M.logout()
print(n, total.hexdigest())
`

// raw is a line-oriented client for what no library sends: pipelined STARTTLS, IDLE,
// oversized lines, garbage.
type raw struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(testwait.Deadline(t)) // keeps a broken test from hanging
	t.Cleanup(func() { c.Close() })
	return &raw{t: t, c: c, r: bufio.NewReader(c)}
}

func (r *raw) send(s string) {
	r.t.Helper()
	if _, err := r.c.Write([]byte(s)); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// line reads one line; "" at EOF.
func (r *raw) line() string {
	l, err := r.r.ReadString('\n')
	if err != nil && l == "" {
		return ""
	}
	return strings.TrimRight(l, "\r\n")
}

// until reads lines until one starts with prefix and returns it.
func (r *raw) until(prefix string) string {
	r.t.Helper()
	for {
		l, err := r.r.ReadString('\n')
		if strings.HasPrefix(l, prefix) {
			return strings.TrimRight(l, "\r\n")
		}
		if err != nil {
			r.t.Fatalf("connection ended before a line starting %q: %v", prefix, err)
		}
	}
}

// closed reads what is left and reports whether the server closed the connection (a reset
// counts: the server closes with unread bytes of ours pending).
func (r *raw) closed() (string, bool) {
	b, err := io.ReadAll(r.r)
	return string(b), err == nil || errors.Is(err, syscall.ECONNRESET)
}
