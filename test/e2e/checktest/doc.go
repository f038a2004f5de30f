// Package checktest runs `mailkey test` end to end against the real test stack of package
// e2e (an OpenID provider, Dovecot and Postfix on loopback): the checklist passes for IMAP,
// POP3 and submission over STARTTLS and implicit TLS, on 127.0.0.1 and ::1, and every failure
// the stack can produce is diagnosed with the right cause. No output may contain a token.
//
// The package holds only tests; TestMain builds the binary once.
package checktest
