// Package provider holds what mailkey knows about mail providers, as plain
// data: OAuth 2.0 endpoints, the least-privilege scopes for IMAP, POP3 and
// SMTP, mail server addresses and SASL preferences (see Preset and Lookup).
//
// For providers without a preset it discovers endpoints from an issuer URL
// with OpenID Connect Discovery 1.0 or OAuth 2.0 Authorization Server Metadata
// (RFC 8414), see Discover. It also parses mail server URLs in the form curl
// writes them (imaps://HOST:993, imap://HOST:143 for STARTTLS as in RFC 2595
// and RFC 3207, see ParseServer) and checks that endpoints use HTTPS except on
// loopback, as RFC 6749 section 3.1 and RFC 8252 require (CheckEndpoint).
//
// DiscoveryCache keeps discovery documents in the state directory, so that
// a refresh needs no discovery request most of the time and survives an
// outage of the discovery endpoint.
//
// Nothing in this package performs I/O except Discover and DiscoveryCache.
package provider
