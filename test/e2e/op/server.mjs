// Local OAuth2 / OpenID Connect authorization server for e2e tests.
// oidc-provider 9.x (panva), in-memory storage, loopback only.
//
// Env (all optional):
//   OP_HOST=127.0.0.1  OP_PORT=18080  OP_ISSUER=http://127.0.0.1:18080
//   AT_TTL=60          access-token lifetime, seconds (also client_credentials tokens)
//   RT_TTL=86400       refresh-token lifetime, seconds
//   CODE_TTL=60        authorization-code lifetime, seconds
//   DEVICE_TTL=600     device_code / user_code lifetime, seconds
//   RT_ROTATE=always   always | never | default (oidc-provider's own policy)
//   AUTO_CONSENT=0     1 = skip the consent page (login page still shown)
//   RT_REQUIRE_OFFLINE=0  1 = refresh token only for scope offline_access + prompt=consent (strict OIDC)
//   OP_DEBUG=0         1 = log every request
//   CERT_CLIENT_JWKS   JSON Web Key Set ({"keys":[...]}, public keys only); when set, the client
//                      "mail-cert" (private_key_jwt, client_credentials, mailbox alice) is registered
//   CERT_CLIENT_MAILBOX=alice@example.test  mailbox the "mail-cert" tokens are good for
//   SA_JWKS            JSON Web Key Set (RS256 public keys) of a service account; when set, the
//                      JWT bearer grant (RFC 7523 §2.1, as Google's service accounts use it) is
//                      answered at POST /sa/token for SA_EMAIL, with domain-wide delegation
//                      over the mailboxes of SA_DOMAIN (the assertion's "sub")
//   SA_EMAIL=mail-sa@iam.example.test  SA_DOMAIN=example.test
//
// Provider personalities: the same accounts and grants, answering as Google or Microsoft do.
//   Google, for the client "mail-google" at /google/auth and /google/token: a refresh token only
//     for access_type=offline with prompt=consent; refresh tokens of an app in "Testing" status
//     (refresh_token_expires_in, 7 days) and Google's invalid_grant "Token has been expired or
//     revoked."; POST /__test/clock days=N moves this personality's clock N days ahead.
//   Microsoft identity platform v2 at /ms/{tenant}/oauth2/v2.0/{authorize,token,devicecode} and
//     /ms/{tenant}/v2.0/.well-known/openid-configuration, for the clients "mail-ms" (multi-tenant)
//     and "mail-ms-single" (registered in the tenant MS_TENANT only): one oidc-provider instance
//     per directory, issuer /ms/{tid}/v2.0, discovery at common and organizations naming the
//     issuer template /ms/{tenantid}/v2.0, ID tokens with tid and preferred_username, no iss in
//     authorization responses, and AADSTS50194 for the single-tenant app at common/organizations.
//     Tenants: common, organizations, MS_TENANT and example.test (the work directory, alice, bob and
//     carol), consumers and 9188040d-6c67-4c5b-b112-36a304b66dad (personal accounts, the same users).
//   Introspection adds "mail" to the scopes of tokens that carry a preset's mail scope (Google's,
//   Exchange Online's, or Yahoo's mail-w), so that Dovecot (scope = mail) takes them as it takes
//   the stack's own.
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';

const env = process.env;
const HOST = env.OP_HOST || '127.0.0.1';
const PORT = Number(env.OP_PORT || 18080);
const ISSUER = env.OP_ISSUER || `http://${HOST.includes(':') ? `[${HOST}]` : HOST}:${PORT}`;
let AT_TTL = Number(env.AT_TTL || 60);
let RT_TTL = Number(env.RT_TTL || 86400);
const CODE_TTL = Number(env.CODE_TTL || 60);
const DEVICE_TTL = Number(env.DEVICE_TTL || 600);
const RT_ROTATE = env.RT_ROTATE || 'always';
const AUTO_CONSENT = env.AUTO_CONSENT === '1';
const RT_REQUIRE_OFFLINE = env.RT_REQUIRE_OFFLINE === '1';
const DEBUG = env.OP_DEBUG === '1';
// POST /__test/fail n=N: the next N token-endpoint requests answer this HTTP status (outage tests)
let FAIL_TOKEN = 0;
let FAIL_STATUS = 500;
let FAIL_ERROR = 'server_error';
// POST /__test/delay ms=N [n=N] [where=after|before]: slow token-endpoint answers
let DELAY_MS = 0;
let DELAY_N = 0;
let DELAY_BEFORE = false;
const HELD = new Set(); // functions that let a delayed request or answer go at once
// GET-like POST /__test/stats: token-endpoint outcomes by grant type since the last reset
let STATS = {};
const bump = (key) => { STATS[key] = (STATS[key] || 0) + 1; };
// POST /__test/answers: when each successful refresh's answer left, since the last reset
let ANSWERS = [];
const nowMs = () => performance.timeOrigin + performance.now(); // wall clock, sub-millisecond

// ---- provider personalities (see the header) ------------------------------
const GOOGLE_CLIENT = 'mail-google';
const GOOGLE_TESTING_LIFETIME = 7 * 86400; // refresh tokens of apps in "Testing" status
const GOOGLE_EXPIRED = 'Token has been expired or revoked.';
let CLOCK_DAYS = 0; // POST /__test/clock days=N
const MS_TENANT = '3c0c8e8a-9b3f-4d8e-a7c1-5d2f6b1e4a90'; // e2e.MicrosoftTenant
const MS_CONSUMERS = '9188040d-6c67-4c5b-b112-36a304b66dad';
const MS_SINGLE_CLIENT = 'mail-ms-single';
const MS_MULTI = ['common', 'organizations'];
const MS_DIRECTORIES = [
  { tid: MS_TENANT, tenants: ['common', 'organizations', MS_TENANT, 'example.test'] },
  { tid: MS_CONSUMERS, tenants: ['consumers', MS_CONSUMERS] },
];
const MS_ROUTES = {
  authorization: '/oauth2/v2.0/authorize',
  token: '/oauth2/v2.0/token',
  device_authorization: '/oauth2/v2.0/devicecode',
  code_verification: '/oauth2/deviceauth',
  jwks: '/discovery/v2.0/keys',
  userinfo: '/oidc/userinfo',
  introspection: '/oauth2/v2.0/introspect',
  revocation: '/oauth2/v2.0/revoke',
};
const MS_MAIL_SCOPES = ['IMAP.AccessAsUser.All', 'POP.AccessAsUser.All', 'SMTP.Send'].map((x) => `https://outlook.office.com/${x}`);
const PERSONALITY_MAIL_SCOPES = ['https://mail.google.com/', 'mail-w', ...MS_MAIL_SCOPES];

// ---- accounts -------------------------------------------------------------
// accountId (= OIDC "sub") is an opaque-ish id; "email" is what Dovecot matches.
const ACCOUNTS = {
  'u-alice': { email: 'alice@example.test', password: 'alice-pass', name: 'Alice Example' },
  'u-bob': { email: 'bob@example.test', password: 'bob-pass', name: 'Bob Example' },
  'u-carol': { email: 'carol@example.test', password: 'carol-pass', name: 'Carol Example' },
};
const byLogin = (login) => {
  const l = String(login || '').trim().toLowerCase();
  return Object.entries(ACCOUNTS).find(([id, a]) => id === l || a.email === l || a.email.split('@')[0] === l);
};

// ---- clients --------------------------------------------------------------
const LOOPBACK_REDIRECTS = ['http://127.0.0.1/', 'http://[::1]/', 'http://localhost/'];
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const clients = [
  { // public native app (RFC 8252): PKCE mandatory, any loopback port accepted
    client_id: 'mail-public',
    client_name: 'Mail proxy (public)',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token', DEVICE_GRANT],
    response_types: ['code'],
    redirect_uris: LOOPBACK_REDIRECTS,
  },
  { // confidential "desktop" app (like a Google "Desktop app" client with a secret)
    client_id: 'mail-confidential',
    client_secret: 'mail-confidential-secret',
    client_name: 'Mail proxy (confidential)',
    application_type: 'native',
    token_endpoint_auth_method: 'client_secret_basic', // client_secret_post is accepted too
    grant_types: ['authorization_code', 'refresh_token', DEVICE_GRANT],
    response_types: ['code'],
    redirect_uris: LOOPBACK_REDIRECTS,
  },
  { // daemon / app-only access (client_credentials); "mailbox" says which mailbox it may open
    client_id: 'mail-daemon',
    client_secret: 'mail-daemon-secret',
    client_name: 'Mail daemon (client_credentials)',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'mail',
    mailbox: 'alice@example.test',
  },
  { // the resource server (Dovecot): may only introspect
    client_id: 'dovecot',
    client_secret: 'dovecot-secret',
    client_name: 'Dovecot introspection',
    grant_types: [],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_post',
  },
  { // a Google "Desktop app" OAuth client (it has a secret), answered as Google answers
    client_id: GOOGLE_CLIENT,
    client_secret: 'mail-google-secret',
    client_name: 'Mail proxy (Google desktop app)',
    application_type: 'native',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: LOOPBACK_REDIRECTS,
  },
  { // a multi-tenant Entra app registration (public client flows allowed)
    client_id: 'mail-ms',
    client_name: 'Mail proxy (multi-tenant)',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token', DEVICE_GRANT],
    response_types: ['code'],
    redirect_uris: LOOPBACK_REDIRECTS,
  },
  { // an Entra app registered for "this organizational directory only"
    client_id: MS_SINGLE_CLIENT,
    client_name: 'Mail proxy (single tenant)',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token', DEVICE_GRANT],
    response_types: ['code'],
    redirect_uris: LOOPBACK_REDIRECTS,
    tenant: MS_TENANT,
  },
];
if (env.CERT_CLIENT_JWKS) {
  clients.push({ // app-only access authenticated with a signed JWT (RFC 7523 private_key_jwt)
    client_id: 'mail-cert',
    client_name: 'Mail daemon (private_key_jwt)',
    token_endpoint_auth_method: 'private_key_jwt',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'mail',
    mailbox: env.CERT_CLIENT_MAILBOX || 'alice@example.test',
    jwks: JSON.parse(env.CERT_CLIENT_JWKS),
  });
}

// A service account (Google style): it signs a JWT with its key and gets a token for the mailbox
// named in "sub". Its tokens are ClientCredentials tokens of the client SA.email.
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const SA = env.SA_JWKS ? {
  email: env.SA_EMAIL || 'mail-sa@iam.example.test',
  domain: env.SA_DOMAIN || 'example.test',
  keys: JSON.parse(env.SA_JWKS).keys,
} : null;
if (SA) {
  clients.push({
    client_id: SA.email,
    client_secret: crypto.randomBytes(24).toString('base64url'), // never used: the grant is the assertion
    client_name: 'Service account (JWT bearer, domain-wide delegation)',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'mail',
  });
}

function rotatePolicy(ctx) {
  if (RT_ROTATE === 'always') return true;
  if (RT_ROTATE === 'never') return false;
  // default policy of oidc-provider: public clients always, others after 70% of the TTL
  const { RefreshToken: rt, Client: client } = ctx.oidc.entities;
  if (client.clientAuthMethod === 'none') return true;
  return rt.ttlPercentagePassed() >= 70;
}

// One in-memory store for the stack's provider and the Microsoft directories, so that the
// introspection Dovecot asks knows every token (oidc-provider's own keeps one per instance).
const SHARED_STORE = new LRU({ maxSize: 1000 });
const sharedAdapter = (model) => new MemoryAdapter(model, SHARED_STORE, 15); // oidc-provider's clockTolerance

// configFor returns the configuration of the stack's own provider (no tid), or of the Microsoft
// personality's instance for directory tid.
const configFor = (tid) => ({
  adapter: sharedAdapter,
  clients,
  responseTypes: ['code'],
  extraClientMetadata: { properties: ['mailbox', 'tenant'] },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'mail', ...PERSONALITY_MAIL_SCOPES],
  claims: {
    openid: tid ? ['sub', 'tid'] : ['sub'],
    email: ['email', 'email_verified'],
    profile: tid ? ['name', 'preferred_username'] : ['name'],
  },
  // Microsoft puts the profile and email claims in the ID token itself
  ...(tid ? { routes: MS_ROUTES, conformIdTokenClaims: false } : {}),
  async findAccount(ctx, sub) {
    const a = ACCOUNTS[sub];
    if (!a) return undefined;
    return {
      accountId: sub,
      async claims() {
        const c = { sub, email: a.email, email_verified: true, name: a.name };
        return tid ? { ...c, tid, preferred_username: a.email } : c;
      },
    };
  },
  // Put the mailbox address into every access token -> visible in introspection
  // (Dovecot: username_attribute = email).
  async extraTokenClaims(ctx, token) {
    if (token.kind === 'AccessToken' && ACCOUNTS[token.accountId]) {
      return { email: ACCOUNTS[token.accountId].email, username: ACCOUNTS[token.accountId].email };
    }
    if (token.kind === 'ClientCredentials' && token.delegatedMailbox) {
      return { email: token.delegatedMailbox, username: token.delegatedMailbox };
    }
    if (token.kind === 'ClientCredentials') {
      const client = await ctx.oidc.provider.Client.find(token.clientId);
      if (client?.mailbox) return { email: client.mailbox, username: client.mailbox };
    }
    return undefined;
  },
  pkce: { required: () => true }, // S256 only (plain is not supported by oidc-provider 9)
  features: {
    devInteractions: { enabled: false }, // we render our own login/consent pages below
    deviceFlow: {
      enabled: true,
      charset: 'base-20',
      mask: '****-****',
      // plain pages (the defaults pull a Google font); the forms are generated by oidc-provider
      async userCodeInputSource(ctx, form, out, err) {
        ctx.body = page('Device sign-in', `${err ? `<p id="error">${esc(err.message || err.name)}</p>` : ''}${form}<button type="submit" form="op.deviceInputForm">Continue</button>`);
      },
      async userCodeConfirmSource(ctx, form, client, deviceInfo, userCode) {
        ctx.body = page('Confirm device', `<p>${esc(client.clientName || client.clientId)} shows code <code id="user_code">${esc(userCode)}</code></p>${form}<button type="submit" form="op.deviceConfirmForm">Continue</button>`);
      },
      async successSource(ctx) {
        ctx.body = page('Sign-in Success', '<p id="success">Device sign-in complete. You can close this page.</p>');
      },
    },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // only the resource server (and a client asking about its own tokens) may introspect
      allowedPolicy(ctx, caller, token) {
        return caller.clientId === 'dovecot' || caller.clientId === token.clientId;
      },
    },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    resourceIndicators: { enabled: false }, // opaque access tokens, validated via introspection
    rpInitiatedLogout: { enabled: false },
  },
  // oidc-provider strips offline_access unless the request also has prompt=consent (OIDC Core 11).
  // Default here: issue a refresh token to every client allowed the refresh_token grant
  // (like Microsoft/Google do for mail clients); RT_REQUIRE_OFFLINE=1 restores strict OIDC.
  // The Google personality adds offline_access for access_type=offline (see /google/auth), which
  // oidc-provider keeps only with prompt=consent: Google's rule for a refresh token.
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token')
    && (!(RT_REQUIRE_OFFLINE || client.clientId === GOOGLE_CLIENT) || code.scopes.has('offline_access')),
  expiresWithSession: async () => false, // tokens outlive the login-session cookie
  rotateRefreshToken: rotatePolicy,
  ttl: { // functions so that POST /__test/ttl can change them at run time
    AccessToken: () => AT_TTL,
    ClientCredentials: () => AT_TTL,
    AuthorizationCode: CODE_TTL,
    DeviceCode: DEVICE_TTL,
    IdToken: 3600,
    RefreshToken: () => RT_TTL,
    Interaction: 3600,
    Session: 86400,
    Grant: () => Math.max(RT_TTL, 86400),
  },
  cookies: { keys: ['e2e-cookie-key-not-secret'] },
  // under the path the instance is reached at (the Microsoft personality's tenant)
  interactions: { url: (ctx, interaction) => `${mountOf(ctx, tid)}/interaction/${interaction.uid}` },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html><body><h1>error</h1><pre id="error">${esc(JSON.stringify(out))}</pre></body></html>`;
  },
});

// mountOf is the path an instance is reached at in this request: "" for the stack's own
// provider, /ms/{tenant} for a Microsoft directory.
function mountOf(ctx, tid) {
  const route = tid ? MS_ROUTES.authorization : '/auth';
  const path = new URL(ctx.oidc.urlFor('authorization')).pathname;
  return path.slice(0, path.length - route.length);
}

const provider = new Provider(ISSUER, configFor());
// The Microsoft directories share the stack's clients, accounts and (in-memory) token storage,
// so that the stack's introspection, which Dovecot asks, knows their tokens.
for (const d of MS_DIRECTORIES) {
  d.provider = new Provider(`${ISSUER}/ms/${d.tid}/v2.0`, configFor(d.tid));
  d.provider.on('server_error', (ctx, err) => console.error('server_error', err));
  d.callback = d.provider.callback();
}
provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.on('grant.success', (ctx) => {
  bump(`${ctx.oidc.params.grant_type}.success`);
  if (ctx.oidc.params.grant_type !== 'refresh_token') return;
  // The refresh token has rotated by now; note when the answer leaves (see /__test/answers).
  let noted = false;
  const note = (finished) => {
    if (!noted) ANSWERS.push({ status: ctx.res.statusCode, sent: nowMs(), finished });
    noted = true;
  };
  ctx.res.on('finish', () => note(true));
  ctx.res.on('close', () => note(false));
});
provider.on('grant.error', (ctx, err) => bump(`${ctx.oidc?.params?.grant_type || 'unknown'}.error.${err.error || err.message}`));
if (DEBUG) {
  provider.on('grant.success', (ctx) => console.log('grant.success', ctx.oidc.params.grant_type));
  provider.on('grant.error', (ctx, err) => console.log('grant.error', err.message, err.error_description));
}

// ---- interaction pages (login + consent), plain HTML, easy to script -------
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body><h1>${esc(title)}</h1>${body}</body></html>`;

function loginPage(base, uid, params, error) {
  return page('Sign-in', `${error ? `<p id="error">${esc(error)}</p>` : ''}
<form id="login" method="post" action="${base}/interaction/${uid}/login">
  <input type="hidden" name="prompt" value="login"/>
  <input type="text" name="login" value="${esc(params.login_hint || '')}"/>
  <input type="password" name="password"/>
  <button type="submit">Sign in</button>
</form>
<form id="abort" method="post" action="${base}/interaction/${uid}/abort"><button type="submit">Cancel</button></form>`);
}

function consentPage(base, uid, client, details) {
  const scopes = (details.missingOIDCScope || []).join(' ');
  return page('Authorize', `<p>${esc(client.clientName || client.clientId)} asks for: <span id="scopes">${esc(scopes)}</span></p>
<form id="consent" method="post" action="${base}/interaction/${uid}/confirm">
  <input type="hidden" name="prompt" value="consent"/>
  <button type="submit">Allow</button>
</form>
<form id="abort" method="post" action="${base}/interaction/${uid}/abort"><button type="submit">Deny</button></form>`);
}

async function readForm(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
}

async function grantConsent(op, details, params, session, grantId) {
  const grant = grantId
    ? await op.Grant.find(grantId)
    : new op.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  if (details.missingResourceScopes) {
    for (const [indicator, scope] of Object.entries(details.missingResourceScopes)) {
      grant.addResourceScope(indicator, scope.join(' '));
    }
  }
  return grant.save();
}

// handleInteraction serves the interaction pages of provider op, reached at base; path is the
// request's path after base.
async function handleInteraction(op, base, req, res, path) {
  const [, , uid, action] = path.split('/');
  const details = await op.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction uid mismatch');
  const { prompt, params, session, grantId } = details;
  res.setHeader('Cache-Control', 'no-store');

  if (req.method === 'GET' && !action) {
    if (prompt.name === 'login') {
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      return res.end(loginPage(base, uid, params));
    }
    if (prompt.name === 'consent') {
      if (AUTO_CONSENT) {
        const id = await grantConsent(op, prompt.details, params, session, grantId);
        return op.interactionFinished(req, res, { consent: { grantId: id } }, { mergeWithLastSubmission: true });
      }
      const client = await op.Client.find(params.client_id);
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      return res.end(consentPage(base, uid, client, prompt.details));
    }
    res.statusCode = 501;
    return res.end(`unsupported prompt ${prompt.name}`);
  }

  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const found = byLogin(form.login);
    if (!found || !crypto.timingSafeEqual(
      Buffer.from(crypto.createHash('sha256').update(found[1].password).digest()),
      Buffer.from(crypto.createHash('sha256').update(String(form.password || '')).digest()),
    )) {
      res.statusCode = 401;
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      return res.end(loginPage(base, uid, { login_hint: form.login }, 'Invalid login or password'));
    }
    return op.interactionFinished(req, res, { login: { accountId: found[0] } }, { mergeWithLastSubmission: false });
  }

  if (req.method === 'POST' && action === 'confirm') {
    await readForm(req);
    if (prompt.name !== 'consent') throw new Error(`expected consent prompt, got ${prompt.name}`);
    const id = await grantConsent(op, prompt.details, params, session, grantId);
    return op.interactionFinished(req, res, { consent: { grantId: id } }, { mergeWithLastSubmission: true });
  }

  if (req.method === 'POST' && action === 'abort') {
    await readForm(req);
    return op.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }

  res.statusCode = 404;
  return res.end('not found');
}

// ---- JWT bearer grant for the service account (POST /sa/token) -------------
// Checks what Google checks: an RS256 signature by one of the account's keys, iss = the account,
// aud = this endpoint, a lifetime of at most an hour, the mail scope, and a "sub" that is a
// mailbox of the delegated domain. Errors use Google's codes and words.
async function handleJWTBearer(req, res) {
  const form = await readForm(req);
  const reply = (status, body) => {
    res.statusCode = status;
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('Cache-Control', 'no-store');
    res.end(JSON.stringify(body));
  };
  const fail = (error, description) => reply(400, { error, error_description: description });
  if (req.method !== 'POST') return reply(405, { error: 'invalid_request' });
  if (form.grant_type !== JWT_BEARER) return fail('unsupported_grant_type', 'Invalid grant_type: ' + form.grant_type);
  const parts = String(form.assertion || '').split('.');
  let header; let claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return fail('invalid_grant', 'Invalid JWT: malformed assertion');
  }
  if (parts.length !== 3 || header.alg !== 'RS256') return fail('invalid_grant', 'Invalid JWT: must be signed with RS256');
  const jwk = SA.keys.find((k) => !header.kid || k.kid === header.kid);
  let good = false;
  try {
    good = jwk && crypto.verify('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`),
      crypto.createPublicKey({ key: jwk, format: 'jwk' }), Buffer.from(parts[2], 'base64url'));
  } catch {
    good = false;
  }
  if (!good) return fail('invalid_grant', 'Invalid JWT Signature.');
  if (claims.iss !== SA.email) return fail('invalid_client', 'The OAuth client was not found.');
  if (claims.aud !== `${ISSUER}/sa/token`) return fail('invalid_grant', 'Invalid JWT: aud must be the token endpoint.');
  const now = Math.floor(Date.now() / 1000);
  if (!(claims.exp > now) || !(claims.iat <= now + 60) || claims.exp - claims.iat > 3600) {
    return fail('invalid_grant', 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.');
  }
  const scopes = String(claims.scope || '').split(' ').filter(Boolean);
  if (!scopes.includes('mail') || scopes.some((sc) => !['mail', 'openid', 'email'].includes(sc))) {
    return fail('unauthorized_client', 'Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.');
  }
  const sub = String(claims.sub || '').toLowerCase();
  if (!sub.endsWith(`@${SA.domain}`) || !byLogin(sub)) return fail('invalid_grant', 'Invalid email or User ID');
  const client = await provider.Client.find(SA.email);
  const token = new provider.ClientCredentials({ client, scope: 'mail' });
  token.delegatedMailbox = sub;
  const value = await token.save();
  if (DEBUG) console.log('grant.success', JWT_BEARER);
  return reply(200, { access_token: value, token_type: 'Bearer', expires_in: AT_TTL });
}

// ---- test-only control endpoints (loopback, no auth) ----------------------
//   POST /__test/ttl            at=SECONDS rt=SECONDS   -> lifetimes for tokens issued from now on
//   POST /__test/clock          days=N -> the Google personality's clock runs N days ahead
//   POST /__test/drop-token     token=ACCESS_OR_REFRESH_TOKEN -> delete just that token
//        (the /token/revocation endpoint of oidc-provider also revokes every other token of
//         the grant, refresh token included; this one simulates "access token no longer valid,
//         refresh token still fine")
//   POST /__test/fail           n=N [status=500] [error=server_error] -> the next N requests to
//        /token answer HTTP `status` with {"error": error}; n=0 ends the outage
//   POST /__test/delay          ms=N [n=N] [where=after] -> the next n requests to /token (every
//        one while n is absent) are slowed by ms milliseconds: where=after (the default) handles
//        the request at once, so a refresh token rotates, and holds the answer back; where=before
//        waits before handling it. ms=0 ends it; any new setting lets everything held go at once.
//   POST /__test/stats          [reset=1] -> {"refresh_token.success": N, ...}: token-endpoint
//        outcomes by grant type (and error code) since the last reset
//   POST /__test/answers        [reset=1] -> [{"status": 200, "sent": MS, "finished": true}, ...]:
//        for each successful refresh_token grant since the last reset (its refresh token has
//        rotated), when its answer was handed to the system (wall clock, milliseconds since the
//        epoch), or when its connection closed first (finished false)
async function handleTest(req, res, url) {
  const form = await readForm(req);
  res.setHeader('Content-Type', 'application/json');
  if (url.pathname === '/__test/clock') {
    CLOCK_DAYS = Number(form.days || 0);
    return res.end(JSON.stringify({ days: CLOCK_DAYS }));
  }
  if (url.pathname === '/__test/ttl') {
    if (form.at) AT_TTL = Number(form.at);
    if (form.rt) RT_TTL = Number(form.rt);
    return res.end(JSON.stringify({ at_ttl: AT_TTL, rt_ttl: RT_TTL }));
  }
  if (url.pathname === '/__test/fail') {
    FAIL_TOKEN = Math.max(0, Number(form.n ?? 1) || 0);
    FAIL_STATUS = Number(form.status || 500);
    FAIL_ERROR = String(form.error || 'server_error');
    return res.end(JSON.stringify({ fail: FAIL_TOKEN, status: FAIL_STATUS, error: FAIL_ERROR }));
  }
  if (url.pathname === '/__test/delay') {
    // A new setting lets every request or answer held by the old one go now.
    for (const go of [...HELD]) go();
    DELAY_MS = Math.max(0, Number(form.ms || 0) || 0);
    DELAY_N = form.n === undefined ? Infinity : Math.max(0, Number(form.n) || 0);
    DELAY_BEFORE = form.where === 'before';
    return res.end(JSON.stringify({ ms: DELAY_MS, n: String(DELAY_N), before: DELAY_BEFORE }));
  }
  if (url.pathname === '/__test/stats') {
    const out = STATS;
    if (form.reset) STATS = {};
    return res.end(JSON.stringify(out));
  }
  if (url.pathname === '/__test/answers') {
    const out = ANSWERS;
    if (form.reset) ANSWERS = [];
    return res.end(JSON.stringify(out));
  }
  if (url.pathname === '/__test/drop-token') {
    for (const model of [provider.AccessToken, provider.RefreshToken, provider.ClientCredentials]) {
      const t = await model.find(String(form.token || ''), { ignoreExpiration: true });
      if (t) {
        await t.destroy();
        return res.end(JSON.stringify({ dropped: t.kind }));
      }
    }
    res.statusCode = 404;
    return res.end(JSON.stringify({ dropped: null }));
  }
  res.statusCode = 404;
  return res.end('{}');
}

// ---- provider personalities: the handlers -----------------------------------
// patchJSON lets edit change the JSON body an answer ends with (return the new body, or
// nothing to keep it).
function patchJSON(res, edit) {
  const end = res.end.bind(res);
  res.end = (chunk, ...rest) => {
    if (chunk && String(res.getHeader('content-type') || '').includes('json')) {
      let body;
      try {
        body = edit(JSON.parse(chunk.toString()), res.statusCode);
      } catch {
        body = undefined;
      }
      if (body) {
        chunk = JSON.stringify(body);
        res.removeHeader('content-length');
      }
    }
    return end(chunk, ...rest);
  };
}

const reply = (res, status, body) => {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Cache-Control', 'no-store');
  res.end(JSON.stringify(body));
};

// addMailScope: Dovecot asks for scope "mail"; a personality's mail scope stands for it.
function addMailScope(res) {
  patchJSON(res, (b) => {
    const scopes = String(b.scope || '').split(' ').filter(Boolean);
    if (!b.active || scopes.includes('mail') || !scopes.some((x) => PERSONALITY_MAIL_SCOPES.includes(x))) return undefined;
    return { ...b, scope: [...scopes, 'mail'].join(' ') };
  });
}

// Shared mailboxes and their delegates (DELEGATES="shared@x=alice@x,bob@x;other@x=carol@x"), as
// Exchange's Full Access permission: a shared mailbox's passdb in Dovecot introspects with
// ?mailbox=ADDR, and a token of one of its delegates is answered as the mailbox's. Any other
// token stays its own user's, which Dovecot refuses as a mismatch.
const DELEGATES = new Map(String(env.DELEGATES || '').split(';').filter(Boolean).map((entry) => {
  const [mailbox, users = ''] = entry.split('=');
  return [mailbox.toLowerCase(), users.split(',').map((u) => u.toLowerCase())];
}));

function answerDelegate(res, user) {
  const mailbox = String(user || '').toLowerCase();
  if (!DELEGATES.has(mailbox)) return;
  patchJSON(res, (b) => {
    if (!b.active || !DELEGATES.get(mailbox).includes(String(b.email || '').toLowerCase())) return undefined;
    bump('introspection.delegate');
    return { ...b, email: mailbox, username: mailbox };
  });
}

// The client a token request authenticates as: HTTP Basic, else client_id in the body.
function tokenClient(req, form) {
  const m = /^Basic (.+)$/i.exec(req.headers.authorization || '');
  if (m) return decodeURIComponent(Buffer.from(m[1], 'base64').toString('utf8').split(':')[0]);
  return String(form.client_id || '');
}

// Google: /google/auth and /google/token, then the stack's own /auth and /token.
async function handleGoogle(req, res, url) {
  if (url.pathname === '/google/auth') {
    const q = url.searchParams;
    if (q.get('access_type') === 'offline') q.set('scope', `${q.get('scope') || ''} offline_access`.trim());
    req.url = `/auth?${q}`;
    return opCallback(req, res);
  }
  if (url.pathname !== '/google/token') {
    res.statusCode = 404;
    return res.end('not found');
  }
  const form = await readForm(req);
  req.body = form; // oidc-provider reads a body parsed before it
  const clock = Math.floor(Date.now() / 1000) + CLOCK_DAYS * 86400;
  let age = 0;
  if (form.grant_type === 'refresh_token' && tokenClient(req, form) === GOOGLE_CLIENT) {
    const rt = await provider.RefreshToken.find(String(form.refresh_token || ''), { ignoreExpiration: true });
    if (rt) age = clock - (rt.iiat || rt.iat);
    if (age >= GOOGLE_TESTING_LIFETIME) {
      bump('google.testing-expiry');
      return reply(res, 400, { error: 'invalid_grant', error_description: GOOGLE_EXPIRED });
    }
  }
  patchJSON(res, (b, status) => {
    if (status !== 200) return b.error === 'invalid_grant' ? { error: 'invalid_grant', error_description: GOOGLE_EXPIRED } : undefined;
    const scope = String(b.scope || '').split(' ').filter((x) => x && x !== 'offline_access').join(' ');
    const out = { ...b, scope };
    if (b.refresh_token) out.refresh_token_expires_in = GOOGLE_TESTING_LIFETIME - age;
    return out;
  });
  req.url = '/token';
  return opCallback(req, res);
}

// Microsoft: /ms/{tenant}/… to the directory's instance, mounted at /ms/{tenant}.
const aadsts = (code, text) => `AADSTS${code}: ${text} Trace ID: ${crypto.randomUUID()} Correlation ID: ${crypto.randomUUID()} Timestamp: ${new Date().toISOString().replace('T', ' ').slice(0, 19)}Z`;
const msSingleTenantError = (clientId) => aadsts(50194, `Application '${clientId}'(Mail proxy (single tenant)) is not configured as a multi-tenant application. Usage of the /common endpoint is not supported for such applications created after '10/15/2018'. Use a tenant-specific endpoint or configure the application to be multi-tenant.`);

async function handleMicrosoft(req, res, url) {
  const [, , tenant, ...restParts] = url.pathname.split('/');
  const rest = `/${restParts.join('/')}`;
  const d = MS_DIRECTORIES.find((x) => x.tenants.includes(String(tenant).toLowerCase()));
  if (!d) {
    return reply(res, 400, { error: 'invalid_tenant', error_description: aadsts(90002, `Tenant '${tenant}' not found.`) });
  }
  const base = `/ms/${tenant}`;
  const multi = MS_MULTI.includes(tenant.toLowerCase());
  if (rest === '/v2.0/.well-known/openid-configuration') {
    // common and organizations name a template: each user's tenant issues its own tokens
    patchJSON(res, (b) => {
      const out = { ...b, issuer: multi ? `${ISSUER}/ms/{tenantid}/v2.0` : d.provider.issuer };
      delete out.authorization_response_iss_parameter_supported;
      return out;
    });
    req.originalUrl = `${base}/.well-known/openid-configuration`;
    req.url = '/.well-known/openid-configuration';
    return d.callback(req, res);
  }
  if (rest.startsWith('/interaction/')) return handleInteraction(d.provider, base, req, res, rest);
  if (rest === MS_ROUTES.authorization) {
    const q = url.searchParams;
    const redirect = URL.parse(q.get('redirect_uri') || '');
    if (multi && q.get('client_id') === MS_SINGLE_CLIENT && redirect && LOOPBACK_REDIRECTS.some((r) => URL.parse(r).hostname === redirect.hostname)) {
      redirect.searchParams.set('error', 'invalid_request');
      redirect.searchParams.set('error_description', msSingleTenantError(MS_SINGLE_CLIENT));
      if (q.get('state')) redirect.searchParams.set('state', q.get('state'));
      res.statusCode = 302;
      res.setHeader('Location', redirect.href);
      return res.end();
    }
  }
  if (rest === MS_ROUTES.authorization || rest.startsWith(`${MS_ROUTES.authorization}/`)) {
    // Microsoft's authorization responses carry no iss (RFC 9207)
    const setHeader = res.setHeader.bind(res);
    res.setHeader = (name, value) => {
      if (String(name).toLowerCase() === 'location' && typeof value === 'string') {
        const u = URL.parse(value);
        if (u && u.origin !== new URL(ISSUER).origin) {
          u.searchParams.delete('iss');
          return setHeader(name, u.href);
        }
      }
      return setHeader(name, value);
    };
  }
  if (req.method === 'POST' && (rest === MS_ROUTES.token || rest === MS_ROUTES.device_authorization)) {
    const form = await readForm(req);
    req.body = form; // oidc-provider reads a body parsed before it
    if (multi && tokenClient(req, form) === MS_SINGLE_CLIENT) {
      const description = msSingleTenantError(MS_SINGLE_CLIENT);
      return reply(res, 400, { error: 'invalid_request', error_description: description, error_codes: [50194] });
    }
  }
  req.originalUrl = req.url;
  req.url = rest + url.search;
  return d.callback(req, res);
}

// ---- HTTP server -----------------------------------------------------------
const opCallback = provider.callback();
const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, ISSUER);
  if (DEBUG) console.log(req.method, url.pathname);
  try {
    if (url.pathname === '/healthz') {
      res.setHeader('Content-Type', 'application/json');
      return res.end(JSON.stringify({ ok: true, issuer: ISSUER, at_ttl: AT_TTL, rt_ttl: RT_TTL }));
    }
    if (url.pathname.startsWith('/interaction/')) return await handleInteraction(provider, '', req, res, url.pathname);
    if (url.pathname.startsWith('/google/')) return await handleGoogle(req, res, url);
    if (url.pathname.startsWith('/ms/')) return await handleMicrosoft(req, res, url);
    if (url.pathname === '/token/introspection') {
      addMailScope(res);
      answerDelegate(res, url.searchParams.get('mailbox'));
    }
    if (url.pathname.startsWith('/__test/') && req.method === 'POST') return await handleTest(req, res, url);
    if (SA && url.pathname === '/sa/token') return await handleJWTBearer(req, res);
    if (url.pathname === '/token' && FAIL_TOKEN > 0) {
      FAIL_TOKEN -= 1;
      await readForm(req);
      bump(`injected.${FAIL_ERROR}`);
      res.statusCode = FAIL_STATUS;
      res.setHeader('Content-Type', 'application/json');
      res.setHeader('Cache-Control', 'no-store');
      return res.end(JSON.stringify({ error: FAIL_ERROR, error_description: 'injected failure (/__test/fail)' }));
    }
    if (url.pathname === '/token' && DELAY_MS > 0 && DELAY_N > 0) {
      DELAY_N -= 1;
      const ms = DELAY_MS;
      // hold runs fn after ms, or as soon as the delay is changed or ended.
      const hold = (fn) => {
        const go = () => { if (HELD.delete(go)) { clearTimeout(timer); fn(); } };
        const timer = setTimeout(go, ms);
        HELD.add(go);
      };
      if (DELAY_BEFORE) {
        await new Promise((r) => hold(r));
      } else {
        const end = res.end.bind(res);
        res.end = (...args) => { hold(() => end(...args)); return res; };
      }
    }
    return opCallback(req, res);
  } catch (err) {
    console.error('interaction error', err);
    if (!res.headersSent) {
      res.statusCode = err.statusCode || 500;
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      res.end(page('error', `<pre id="error">${esc(`${err.name}: ${err.message}`)}</pre>`));
    } else {
      res.end();
    }
    return undefined;
  }
});

server.listen(PORT, HOST, () => {
  console.log(`oidc-provider ${ISSUER} listening on ${HOST}:${PORT} (AT_TTL=${AT_TTL}s RT_TTL=${RT_TTL}s RT_ROTATE=${RT_ROTATE} AUTO_CONSENT=${AUTO_CONSENT})`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
