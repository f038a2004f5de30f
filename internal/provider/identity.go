package provider

// Where the identity facts of the presets come from (IdentityScopes,
// IdentityByMailLogin, IdentityTenant); each cites one of these pages by
// its tag.
//
//	[google-oidc]    https://developers.google.com/identity/openid-connect/openid-connect
//	                 (openid and email; the ID token's email and email_verified)
//	[ms-scopes]      https://learn.microsoft.com/entra/identity-platform/scopes-oidc
//	                 (openid, email, profile and offline_access are the OpenID
//	                 Connect scopes; one request may carry them with the scopes
//	                 of one resource)
//	[ms-idtoken]     https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference
//	                 (preferred_username, email, tid; personal accounts have
//	                 tid 9188040d-6c67-4c5b-b112-36a304b66dad)
//	[yahoo-oidc]     https://developer.yahoo.com/oauth2/guide/openid_connect/
//	[fastmail-oauth] https://www.fastmail.com/for-developers/oauth/

// ConsumerTenantID is the tenant of every personal Microsoft account
// (Outlook.com, Hotmail, Live): ID tokens of those accounts carry it as
// tid [ms-idtoken].
const ConsumerTenantID = "9188040d-6c67-4c5b-b112-36a304b66dad"
