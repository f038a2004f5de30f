// Package servetest runs `mailkey serve` end to end against the real test stack of package
// e2e (an OpenID provider, Dovecot and Postfix on loopback) and real mail clients: Python's
// imaplib, poplib and smtplib, fetchmail and mutt log in with local app passwords, and
// mailkey authenticates upstream with SASL XOAUTH2 over STARTTLS (RFC 2595, RFC 3207).
//
// The tests prove that mail flows both ways (SMTP submission to a mailbox, IMAP IDLE,
// byte-identical bulk FETCH), that nothing a client sends before proving an app password
// reaches the server (wrong passwords, unknown users, STARTTLS injection, oversized lines,
// garbage: the upstream dial counter on /metrics does not move), that a removed app
// password stops working in the running server, that tokens are refreshed in the
// background and after an upstream refusal, and that no secret reaches serve's logs.
//
// The package holds only tests; TestMain builds the binary once. MAILKEY_E2E_BULK=1 makes
// the bulk test fetch 10,000 messages instead of 300.
package servetest
