// Package sasl holds the OAuth 2.0 SASL mechanisms mail servers speak:
// XOAUTH2 (Google's and Microsoft's mechanism, described in Google's
// "OAuth 2.0 Mechanism" page) and OAUTHBEARER (RFC 7628, with the GS2 header
// of RFC 5801).
//
// The clients and servers implement the interfaces of
// github.com/emersion/go-sasl, so that the IMAP, POP3 and SMTP code paths
// share them and only adapt the framing. The OAUTHBEARER client wraps
// go-sasl's own.
//
// Both mechanisms fail the same way: the server sends one challenge holding
// a JSON error object, the client answers it (an empty response for
// XOAUTH2, a single 0x01 byte for OAUTHBEARER, RFC 7628 §3.2.3) and only
// then does the protocol report the failure. The clients here answer that
// challenge and keep the decoded JSON (see [Failure] and [FailureReporter])
// so that a caller can explain the failure to a human.
//
// Values handed to the protocol layer are raw bytes; base64 is the framing's
// business, except where a function says otherwise. No error returned by
// this package contains an access token.
package sasl
