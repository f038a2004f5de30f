// Package check runs `mailkey test`: a real login to each of an account's
// mail servers, one checklist per protocol, and a diagnosis of whatever
// failed.
//
// For IMAP (RFC 9051, RFC 3501), POP3 (RFC 1939, RFC 5034) and SMTP
// submission (RFC 5321, RFC 4954, RFC 6409) the checklist is the same:
// resolve the host and connect within a timeout; TLS, implicit or by
// STARTTLS (RFC 2595, RFC 3207), with the certificate verified and its
// names and expiry shown; the capabilities, and which OAuth mechanisms
// (XOAUTH2, OAUTHBEARER per RFC 7628) they offer; a token from the
// lifecycle manager, described but never shown (audience, scopes and
// expiry when it is a JWT, RFC 7519); the SASL authentication; and one
// command after it (LIST, STAT, MAIL FROM), because a server may accept a
// token for another mailbox and fail only on the next command.
//
// The login is package upstream's, the same one mailkey serve uses (with
// its one forced refresh and second try), so a passing test means the
// proxy logs in too; this package only records its phases as steps.
//
// When a step fails, what was observed (the server's reply and response
// code, the SASL error challenge, the TLS error, the token's scopes and
// owner, an RFC 7662 introspection answer) goes through a table of rules,
// Rules, that names the cause and the fix. docs/troubleshooting.md is
// generated from that table (go generate), so the two cannot drift.
//
// The package never prints and never holds a token in anything it
// returns: Report, its JSON form and the optional protocol transcript
// (with the SASL exchange shown as <redacted>) carry no secret.
package check

//go:generate go run ./gendoc -o ../../docs/troubleshooting.md
