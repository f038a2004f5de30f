// Package oauth runs the OAuth 2.0 flows mailkey needs to get and keep access
// tokens for mail servers, on top of golang.org/x/oauth2 and go-oidc:
//
//   - LoopbackLogin: authorization code with PKCE S256 and state, redirect to a
//     one-shot listener on a loopback address (RFC 6749 §4.1, RFC 7636,
//     RFC 8252 §7.3), with the RFC 9207 iss check;
//   - PasteLogin: the same grant for machines without a browser: the user pastes
//     the redirect URL (or the bare code) from another machine's address bar;
//   - DeviceLogin: the device authorization grant (RFC 8628);
//   - Refresh (RFC 6749 §6), ClientCredentials (§4.4), ClientAssertion
//     (certificate, RFC 7523 §2.2 private_key_jwt), ServiceAccount (JWT bearer
//     grant, RFC 7523 §2.1, Google Workspace domain-wide delegation);
//   - Revoke (RFC 7009), VerifyIDToken (OpenID Connect Core §3.1.3.7) and
//     Identify (the ID token, completed from UserInfo, Core §5.3).
//
// Security follows RFC 9700: every endpoint must be https unless it is on a
// loopback host, every auth-code flow uses state and PKCE S256, the loopback
// listener accepts exactly one callback whose state matches and is closed when
// the flow returns. Errors are *Error values whose text carries the provider's
// error code and description but never a token, code, verifier, client secret
// or response body; Classify says whether retrying can help.
//
// The package does no I/O of its own beyond the HTTP calls and the loopback
// listener; it prints only to the writers it is given, and never prints a
// secret there either.
package oauth
