// Package proxy is the client-facing side of `mailkey serve`: a local IMAP,
// POP3 and SMTP proxy for mail clients that only know passwords.
//
// A [Server] accepts connections, speaks the protocol's pre-authentication
// state itself (the state machines live in the imapproxy, pop3proxy and
// smtpproxy subpackages), checks the client's app password with an
// [Authenticator], asks a [Dialer] for an upstream connection that is already
// authenticated (XOAUTH2 or OAUTHBEARER over verified TLS), answers the
// client's login with the protocol's success reply and from then on relays
// bytes untouched in both directions.
//
// Threat model: the listener may be reached by any local process (or, when
// configured, by the network). Nothing a client sends before it has proved
// an app password reaches the upstream server: wrong passwords, unknown
// users, oversized lines, garbage and commands injected after STARTTLS
// (RFC 3207 §6, CVE-2011-0411) are refused without dialling. Failed logins
// are rate-limited per source address, connections are capped per source
// address, and every state has a timeout. Passwords and tokens never appear
// in logs or errors.
//
// Standards: RFC 9051 and RFC 3501 (IMAP), RFC 7888 (LITERAL+), RFC 4959
// (SASL-IR), RFC 2971 (ID), RFC 5530 (IMAP response codes), RFC 1939, RFC 2449,
// RFC 5034 and RFC 3206 (POP3), RFC 5321, RFC 4954, RFC 3207 and RFC 2034
// (SMTP submission), RFC 2595 (STARTTLS for IMAP and POP3), RFC 4616 (PLAIN).
package proxy
