// Package clitest runs the mailkey binary end to end against the real test stack of package
// e2e: an OpenID provider, Dovecot and Postfix on loopback. Each test builds accounts with
// mailkey add, logs in through every flow mailkey offers (loopback redirect and PKCE per
// RFC 8252 and RFC 7636, pasted redirect, device grant per RFC 8628, client credentials with
// a secret or an RFC 7523 client assertion, an imported refresh token), and proves that the
// tokens mailkey token prints open IMAP, POP3 and submission with SASL XOAUTH2 and
// OAUTHBEARER (RFC 7628), directly and through msmtp, mbsync and mutt.
//
// The package holds only tests; TestMain builds the binary once. Every mailkey process runs
// with its own configuration file, state folder and home, and no browser.
package clitest
