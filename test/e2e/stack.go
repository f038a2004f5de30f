// Package e2e runs the real end-to-end test stack on loopback: a local OpenID provider
// (the npm package oidc-provider, run by Node), Dovecot offering IMAP, POP3 and submission
// with SASL XOAUTH2 and OAUTHBEARER (RFC 7628) by introspecting the provider's opaque tokens
// (RFC 7662), and a Postfix relay that delivers submitted mail back into Dovecot over LMTP
// and offers a submission service of its own, authenticating through Dovecot. On request
// (WithSingleMechanismServers) two more Dovecot instances offer only XOAUTH2 and only
// OAUTHBEARER.
//
// The provider issues tokens through every flow a mail client uses: authorization code with
// PKCE (RFC 7636) and loopback redirects on any port (RFC 8252), refresh tokens with rotation,
// the device authorization grant (RFC 8628), client credentials with a secret or a signed
// JWT (RFC 7523), and revocation (RFC 7009). A scripted browser (Browse and its wrappers)
// clicks through its login and consent pages.
//
// Every stack has its own directory and its own free ports, so several packages can run
// stacks at the same time under go test ./... . Start is the entry point for tests; Run and
// Close serve programs such as cmd/sandbox. The daemons must run as root on Linux (Dovecot and
// Postfix drop privileges themselves); test/e2e/install-deps.sh installs them on Debian.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/mailkey/mailkey/internal/testwait"
)

// Accounts known to both the provider (login page) and Dovecot (userdb). The provider accepts
// the address or its local part as login name.
const (
	Alice         = "alice@example.test"
	AlicePassword = "alice-pass"
	Bob           = "bob@example.test"
	BobPassword   = "bob-pass"
	Carol         = "carol@example.test" // owner of the bulk mailbox (WithBulkMailbox)
	CarolPassword = "carol-pass"
	// Shared is a shared mailbox nobody signs in as: Alice may open it with her own token
	// (Exchange's Full Access), Bob may not. Dovecot checks a token for Shared with a passdb of
	// its own, whose introspection URL names the mailbox, and the provider answers a
	// delegate's token as Shared's.
	Shared = "shared@example.test"
	// SMTPAuthDisabled is the mailbox for which PostfixSubmission answers every AUTH with
	// 535 5.7.139 and SMTPAuthDisabledText, as Exchange Online does for a mailbox (or tenant) with
	// SmtpClientAuthenticationDisabled. Dovecot's own services let it in.
	SMTPAuthDisabled = Carol
)

// SMTPAuthDisabledText is the text of Exchange Online's answer to AUTH when SMTP AUTH is
// switched off, "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is
// disabled for the Tenant. …". PostfixSubmission answers 535 5.7.139 with this text after
// Postfix's own "<address>: Sender address rejected: " (see conf/auth-disabled-commands.tmpl).
const SMTPAuthDisabledText = "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. " +
	"Visit https://aka.ms/smtp_auth_disabled for more information."

// OAuth clients registered at the provider.
const (
	// ClientPublic is a native public client (no secret): authorization code with PKCE,
	// refresh_token and device_code; redirect URIs http://127.0.0.1/, http://[::1]/ and
	// http://localhost/ on any port.
	ClientPublic = "mail-public"
	// ClientConfidential is the same as ClientPublic with a secret (client_secret_basic,
	// client_secret_post accepted too).
	ClientConfidential       = "mail-confidential"
	ClientConfidentialSecret = "mail-confidential-secret"
	// ClientDaemon uses client_credentials with a secret; its tokens open DaemonMailbox.
	ClientDaemon       = "mail-daemon"
	ClientDaemonSecret = "mail-daemon-secret"
	DaemonMailbox      = Alice
	// ClientCert uses client_credentials authenticated by private_key_jwt (RFC 7523); it is
	// registered only when the stack was started WithCertClientJWKS. Its tokens open CertMailbox.
	ClientCert  = "mail-cert"
	CertMailbox = Alice
	// ServiceAccountEmail is the service account registered when the stack was started
	// WithServiceAccountJWKS: it gets tokens with the JWT bearer grant (RFC 7523 §2.1) at
	// Issuer+ServiceAccountTokenPath for any mailbox of ServiceAccountDomain, as a Google
	// service account with domain-wide delegation does.
	ServiceAccountEmail     = "mail-sa@iam.example.test"
	ServiceAccountDomain    = "example.test"
	ServiceAccountTokenPath = "/sa/token"
	// ClientDovecot is the resource server: it may only introspect tokens.
	ClientDovecot       = "dovecot"
	ClientDovecotSecret = "dovecot-secret"
)

// Scopes. Dovecot accepts a token only if it carries ScopeMail.
const (
	ScopeMail = "mail"
)

// DefaultScopes is what AuthCodeToken asks for when given no scopes.
var DefaultScopes = []string{"openid", "email", ScopeMail}

// ErrPrerequisites is wrapped by the error Run returns when a program the stack needs is missing
// or the process lacks the rights to run it.
var ErrPrerequisites = errors.New("e2e stack prerequisites missing")

// InstallHint says how to install what the stack needs.
const InstallHint = "run as root: bash test/e2e/install-deps.sh (Debian 12: apt-get install dovecot-imapd " +
	"dovecot-pop3d dovecot-submissiond dovecot-lmtpd postfix, and Node.js >= 20.18 with npm)"

// Shutdown bound and start-up retries. Nothing in the start-up itself has a bound of its own:
// Start gives up at the test's deadline (testwait), Run when its context ends.
const (
	stopGrace      = 10 * time.Second // SIGTERM to SIGKILL
	startAttempts  = 3                // retries when another process took a picked port
	logTailLines   = 40               // per log in failure dumps
	mailOwner      = "nobody"
	mailGroup      = "nogroup"
	minNodeMajor   = 20
	minNodeMinor20 = 18 // URL.parse, used by oidc-provider's loopback-port matching
)

//go:embed conf/dovecot.conf.tmpl conf/dovecot-oauth2.conf.ext.tmpl conf/main.cf.tmpl conf/master.cf.tmpl conf/auth-disabled-commands.tmpl conf/auth-disabled-reply.tmpl conf/users
var confFS embed.FS

var confTemplates = template.Must(template.New("conf").Option("missingkey=error").
	Funcs(template.FuncMap{"regexpQuote": regexp.QuoteMeta}).ParseFS(confFS, "conf/*.tmpl"))

// Option changes how Run and Start set up a stack.
type Option func(*options)

type options struct {
	atTTL       time.Duration
	rtTTL       time.Duration
	autoConsent bool
	noOAuth     bool
	bulk        int
	imapClients int
	singleMechs bool
	certJWKS    []byte
	saJWKS      []byte
	opEnv       []string
	progress    func(step string)
}

// DefaultAccessTokenTTL is the lifetime of access tokens without WithAccessTokenTTL: longer
// than any test runs (make test gives the test binaries 20 minutes), so that a token a test
// holds never expires under it, however slow the machine. A test that wants a token to be
// due for a refresh sets a refresh margin longer than this (below mailkey's maximum of an
// hour); one that wants it expired issues it with a short SetTTL and waits past its expiry.
const DefaultAccessTokenTTL = 30 * time.Minute

// WithAccessTokenTTL sets the lifetime of access tokens (and client-credentials tokens)
// issued by the provider; the default is DefaultAccessTokenTTL. Whole seconds, at least one.
func WithAccessTokenTTL(d time.Duration) Option { return func(o *options) { o.atTTL = d } }

// WithRefreshTokenTTL sets the lifetime of refresh tokens; the default is one day.
func WithRefreshTokenTTL(d time.Duration) Option { return func(o *options) { o.rtTTL = d } }

// WithAutoConsent makes the provider skip its consent page (the login page stays).
func WithAutoConsent() Option { return func(o *options) { o.autoConsent = true } }

// WithoutOAuth makes Dovecot offer no OAuth mechanism at all (only PLAIN and LOGIN with the
// account passwords), as a server that does not support OAuth would.
func WithoutOAuth() Option { return func(o *options) { o.noOAuth = true } }

// WithSingleMechanismServers also starts two more Dovecot instances on the same users and mail
// store, one offering XOAUTH2 as its only OAuth mechanism (as Microsoft's servers do) and one
// offering only OAUTHBEARER: Stack.XOAUTH2Only and Stack.OAuthBearerOnly. Dovecot 2.3 has one
// list of mechanisms per instance, so each costs its own set of processes.
func WithSingleMechanismServers() Option { return func(o *options) { o.singleMechs = true } }

// WithBulkMailbox fills Carol's INBOX with n generated messages (about 50 KiB on average,
// some with large attachments) before Dovecot starts.
func WithBulkMailbox(n int) Option { return func(o *options) { o.bulk = n } }

// WithIMAPClientLimit lets each Dovecot imap process serve up to n sessions (service imap
// service_count = 0, client_limit = n, process_limit = 100) instead of starting one process per
// session, so that load tests can hold ten thousand idle sessions in a few GiB. Zero keeps the
// default of one process per session.
func WithIMAPClientLimit(n int) Option { return func(o *options) { o.imapClients = n } }

// WithCertClientJWKS registers ClientCert with the given public JSON Web Key Set
// ({"keys":[...]}); the client authenticates with private_key_jwt.
func WithCertClientJWKS(jwks []byte) Option {
	return func(o *options) { o.certJWKS = append([]byte(nil), jwks...) }
}

// WithServiceAccountJWKS registers ServiceAccountEmail with the given public JSON Web Key Set
// (RS256 keys, as PublicJWKS makes them).
func WithServiceAccountJWKS(jwks []byte) Option {
	return func(o *options) { o.saJWKS = append([]byte(nil), jwks...) }
}

// WithOPEnv passes an environment variable to the provider, for the knobs server.mjs reads that
// have no option of their own (RT_ROTATE, RT_REQUIRE_OFFLINE, CODE_TTL, DEVICE_TTL, OP_DEBUG).
func WithOPEnv(key, value string) Option {
	return func(o *options) { o.opEnv = append(o.opEnv, key+"="+value) }
}

// WithProgress has Run call progress with a short line before each step of the start that
// can take a while (installing the provider's npm packages, starting each daemon), so that a
// person waiting for the stack sees what it is doing.
func WithProgress(progress func(step string)) Option {
	return func(o *options) { o.progress = progress }
}

// step reports one step of the start to WithProgress's function, if any.
func (o *options) step(format string, args ...any) {
	if o.progress != nil {
		o.progress(fmt.Sprintf(format, args...))
	}
}

// Stack is one running provider + Dovecot + Postfix on loopback. The exported fields are set
// by Run and must not be changed.
type Stack struct {
	// Dir holds every generated file: configs, logs, the mail store, Postfix's queue.
	Dir string
	// Issuer is the provider's issuer URL, http://127.0.0.1:PORT; its discovery document is at
	// Issuer + "/.well-known/openid-configuration".
	Issuer string
	// IntrospectionURL and RevocationURL are the provider's RFC 7662 and RFC 7009 endpoints.
	IntrospectionURL string
	RevocationURL    string

	// The listeners of Dovecot's main instance, which offers XOAUTH2 and OAUTHBEARER (or no
	// OAuth mechanism, WithoutOAuth).
	Listeners
	// XOAUTH2Only and OAuthBearerOnly are the listeners of the instances that offer only that
	// OAuth mechanism (and PLAIN and LOGIN); nil unless WithSingleMechanismServers.
	XOAUTH2Only, OAuthBearerOnly *Listeners
	// LMTPPort is Dovecot's LMTP service and RelayPort the Postfix relay behind submission.
	LMTPPort, RelayPort int
	// PostfixSubmission (smtp://127.0.0.1:P, STARTTLS required before AUTH) is Postfix's own
	// SMTP server, authenticating through Dovecot's (XOAUTH2 and OAUTHBEARER, or PLAIN and
	// LOGIN WithoutOAuth) and relaying like the relay; for SMTPAuthDisabled it answers every
	// AUTH that carries an initial response with 535 5.7.139 and SMTPAuthDisabledText (and
	// logs the start of that command, part of the token in base64, in postfix.log).
	PostfixSubmissionPort int
	PostfixSubmission     string
	// IPv6 is whether Dovecot also listens on ::1.
	IPv6 bool

	// CAFile is the PEM certificate Dovecot presents (self-signed; SANs localhost, 127.0.0.1
	// and ::1). Trust it to verify TLS.
	CAFile string

	opts     options
	ctx      context.Context // bounds the harness's own calls to the provider and its restarts
	release  func()          // gives back the reserved ports (freePorts)
	opDir    string          // cached provider install: server.mjs + node_modules
	opPort   int
	client   *http.Client
	caPool   *x509.CertPool
	dovecot  []*proc // the main instance first
	postPID  int
	mu       sync.Mutex // guards op and the TTLs
	op       *proc
	closed   bool
	closeErr error
}

// Listeners are the ports of one Dovecot instance on 127.0.0.1 (and ::1 when Stack.IPv6 is
// set): IMAP and POP3 with STARTTLS, implicit-TLS IMAPS and POP3S, submission with STARTTLS
// and implicit-TLS submissions; and the same as URLs: imap://127.0.0.1:P, imaps://…,
// pop3://…, pop3s://…, smtp://… (submission) and smtps://… (submissions).
type Listeners struct {
	IMAPPort, IMAPSPort, POP3Port, POP3SPort, SubmissionPort, SubmissionsPort int
	IMAP, IMAPS, POP3, POP3S, Submission, Submissions                         string
}

// newListeners returns the listeners on six ports, in the order of the fields.
func newListeners(p []int) Listeners {
	return Listeners{
		IMAPPort: p[0], IMAPSPort: p[1], POP3Port: p[2], POP3SPort: p[3], SubmissionPort: p[4], SubmissionsPort: p[5],
		IMAP: "imap://" + Loopback(p[0]), IMAPS: "imaps://" + Loopback(p[1]),
		POP3: "pop3://" + Loopback(p[2]), POP3S: "pop3s://" + Loopback(p[3]),
		Submission: "smtp://" + Loopback(p[4]), Submissions: "smtps://" + Loopback(p[5]),
	}
}

func (l *Listeners) ports() []int {
	return []int{l.IMAPPort, l.IMAPSPort, l.POP3Port, l.POP3SPort, l.SubmissionPort, l.SubmissionsPort}
}

// Prerequisites reports whether this machine can run the stack: Linux, root, and the programs
// node (>= 20.18), npm, dovecot, doveadm and postfix on PATH. The error wraps ErrPrerequisites
// and names what is missing and InstallHint.
func Prerequisites() error {
	var missing []string
	if !platformSupported {
		missing = append(missing, "Linux")
	}
	if os.Geteuid() != 0 {
		missing = append(missing, "root (Dovecot and Postfix drop privileges themselves)")
	}
	for _, p := range []string{"node", "npm", "dovecot", "doveadm", "postfix"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		if err := checkNodeVersion(); err != nil {
			missing = append(missing, err.Error())
		}
		// Debian ships each protocol in its own package; a missing one fails late and obscurely.
		if _, err := os.Stat("/usr/lib/dovecot"); err == nil {
			for _, p := range []string{"imap", "pop3", "submission", "lmtp"} {
				if _, err := os.Stat(filepath.Join("/usr/lib/dovecot", p)); err != nil {
					missing = append(missing, "dovecot "+p)
				}
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s; %s", ErrPrerequisites, strings.Join(missing, ", "), InstallHint)
	}
	return nil
}

func checkNodeVersion() error {
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return fmt.Errorf("node --version: %v", err)
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return fmt.Errorf("node version %q not understood", v)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return fmt.Errorf("node version %q not understood", v)
	}
	if major < minNodeMajor || (major == minNodeMajor && minor < minNodeMinor20) {
		return fmt.Errorf("node >= %d.%d (found %s)", minNodeMajor, minNodeMinor20, v)
	}
	return nil
}

// Start runs a stack for the test in a fresh directory and stops it when the test ends, after
// printing the last lines of every log if the test failed. When the machine lacks what the
// stack needs, the test is skipped, or fails if the environment sets MAILKEY_E2E=1 (CI).
// Start returns nil only after t.Skip or t.Fatal (for a testing.TB that does not stop the
// goroutine).
func Start(t testing.TB, opts ...Option) *Stack {
	t.Helper()
	if err := Prerequisites(); err != nil {
		if os.Getenv("MAILKEY_E2E") == "1" {
			t.Fatalf("MAILKEY_E2E=1 but %v", err)
		} else {
			t.Skipf("skipping e2e test: %v", err)
		}
		return nil
	}
	dir, err := os.MkdirTemp("", "mailkey-e2e-")
	if err != nil {
		t.Fatalf("e2e: %v", err)
		return nil
	}
	// The start (npm ci on a cold cache, then the daemons) and every later call of the
	// harness are bounded by the test's deadline only: a busy machine makes them slower.
	s, err := Run(testwait.Context(t), dir, opts...)
	if err != nil {
		if os.Getenv("MAILKEY_E2E_KEEP") != "1" {
			os.RemoveAll(dir)
		}
		t.Fatalf("e2e: %v", err)
		return nil
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("e2e stack in %s (set MAILKEY_E2E_KEEP=1 to keep it)\n%s", dir, s.LogTails())
		}
		if err := s.Close(); err != nil {
			t.Errorf("e2e: %v", err)
		}
		if os.Getenv("MAILKEY_E2E_KEEP") != "1" {
			os.RemoveAll(dir)
		}
	})
	return s
}

// Run starts a stack whose files live in dir (created if needed; its parents must be
// searchable by other users, because the mail processes run as nobody and Postfix as postfix).
// ctx bounds the start and the harness's later calls to the provider (SetTTL, StartOP, …),
// not the life of the daemons: call Close to stop them.
func Run(ctx context.Context, dir string, opts ...Option) (*Stack, error) {
	if err := Prerequisites(); err != nil {
		return nil, err
	}
	s := &Stack{ctx: ctx, opts: options{atTTL: DefaultAccessTokenTTL, rtTTL: 24 * time.Hour}}
	for _, o := range opts {
		o(&s.opts)
	}
	if s.opts.atTTL < time.Second || s.opts.rtTTL < time.Second {
		return nil, errors.New("e2e: token lifetimes must be at least one second")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s.Dir = abs
	if err := prepareDir(abs); err != nil {
		return nil, err
	}
	if err := raiseNoFile(); err != nil {
		return nil, fmt.Errorf("e2e: raise open-file limit: %w", err)
	}
	if s.opDir, err = installOP(ctx, s.opts.step); err != nil {
		return nil, err
	}
	s.opts.step("writing the certificate and the mailboxes into %s", abs)
	if err := s.writeStatic(); err != nil {
		return nil, err
	}
	// No timeout of its own: every request carries a context.
	s.client = &http.Client{Transport: &http.Transport{Proxy: nil}}
	s.IPv6 = canListen("[::1]:0")

	for attempt := 1; ; attempt++ {
		err = s.start(ctx)
		if err == nil {
			return s, nil
		}
		inUse := errors.Is(err, errAddrInUse)
		s.stopAll()
		s.releasePorts()
		if !inUse || attempt == startAttempts || ctx.Err() != nil {
			return nil, err
		}
		// another process took one of the picked ports between the pick and the bind
		for _, d := range []string{"run", "log", "postfix"} {
			os.RemoveAll(filepath.Join(s.Dir, d))
		}
	}
}

var errAddrInUse = errors.New("address already in use")

// prepareDir creates dir mode 0755 and checks that the daemons' users can reach it.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("e2e: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("e2e: %w", err)
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("e2e: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("e2e: %s is not searchable by other users (mode %v); the mail processes run as %s: use a directory below one that is", p, fi.Mode().Perm(), mailOwner)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func canListen(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// writeStatic writes what does not depend on ports: the TLS certificate, the userdb, the mail
// store and the bulk mailbox.
func (s *Stack) writeStatic() error {
	ssl := filepath.Join(s.Dir, "dovecot", "ssl")
	if err := os.MkdirAll(ssl, 0o755); err != nil {
		return fmt.Errorf("e2e: %w", err)
	}
	s.CAFile = filepath.Join(ssl, "cert.pem")
	certPEM, err := writeSelfSigned(s.CAFile, filepath.Join(ssl, "key.pem"))
	if err != nil {
		return fmt.Errorf("e2e: certificate: %w", err)
	}
	s.caPool = x509.NewCertPool()
	s.caPool.AppendCertsFromPEM(certPEM)

	users, err := confFS.ReadFile("conf/users")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "dovecot", "users"), users, 0o644); err != nil {
		return fmt.Errorf("e2e: %w", err)
	}
	uid, gid, err := lookupIDs(mailOwner, mailGroup)
	if err != nil {
		return err
	}
	mail := filepath.Join(s.Dir, "mail")
	if err := os.MkdirAll(mail, 0o755); err != nil {
		return fmt.Errorf("e2e: %w", err)
	}
	if s.opts.bulk > 0 {
		md := filepath.Join(mail, "example.test", "carol", "Maildir")
		if _, err := WriteBulkMaildir(md, s.opts.bulk, 1); err != nil {
			return fmt.Errorf("e2e: bulk mailbox: %w", err)
		}
	}
	return chownTree(mail, uid, gid)
}

func lookupIDs(userName, groupName string) (uid, gid int, err error) {
	u, err := user.Lookup(userName)
	if err != nil {
		return 0, 0, fmt.Errorf("e2e: user %s: %w", userName, err)
	}
	g, err := user.LookupGroup(groupName)
	if err != nil {
		return 0, 0, fmt.Errorf("e2e: group %s: %w", groupName, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(g.Gid)
	return uid, gid, nil
}

func chownTree(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// confData is what the templates in conf/ see.
type confData struct {
	Dir, Issuer, Listen string
	Listeners
	LMTPPort, RelayPort, PostfixSubmissionPort int
	// Instance names a single-mechanism Dovecot instance ("-xoauth2"); empty for the main one.
	Instance string
	// OAuth lists the OAuth mechanisms Dovecot offers ("xoauth2 oauthbearer"); empty for none.
	OAuth                        string
	DovecotClient, DovecotSecret string
	IMAPClientLimit              int // 0: one imap process per session
	// AuthDisabledInitial holds the base64 beginnings of SMTPAuthDisabled's XOAUTH2 and
	// OAUTHBEARER initial responses, as a regular expression alternation.
	AuthDisabledInitial                 string
	AuthDisabledUser, AuthDisabledReply string
	// Shared is the shared mailbox (Shared) that has a passdb of its own; IntrospectMailbox,
	// in that passdb's oauth2 file only, asks the provider about a token on its behalf.
	Shared, IntrospectMailbox string
}

// singleMechanisms are the instances WithSingleMechanismServers starts: the name (Instance
// without its dash) is the only OAuth mechanism each offers.
var singleMechanisms = []string{"xoauth2", "oauthbearer"}

// listenerPorts is the number of ports of one Dovecot instance (Listeners).
const listenerPorts = 6

// initialResponsePrefixes returns a regular expression alternation of the base64 beginnings
// of user's XOAUTH2 ("user=U^A…") and OAUTHBEARER ("n,a=U,…") initial responses: the
// longest prefixes whose base64 does not depend on what follows (whole groups of 3 bytes).
func initialResponsePrefixes(user string) string {
	var alts []string
	for _, p := range []string{"user=" + user + "\x01", "n,a=" + user + ","} {
		n := len(p) / 3 * 3
		alts = append(alts, base64.StdEncoding.EncodeToString([]byte(p[:n])))
	}
	return strings.Join(alts, "|")
}

// start picks ports, renders the configs and starts the three daemons. The ports stay
// reserved until Close (releasePorts): no other process can take one, even while the provider
// is stopped (StopOP).
func (s *Stack) start(ctx context.Context) error {
	n := 4 + listenerPorts
	if s.opts.singleMechs {
		n += len(singleMechanisms) * listenerPorts
	}
	ports, release, err := freePorts(n, s.IPv6)
	if err != nil {
		return err
	}
	s.release = release
	s.opPort, s.LMTPPort, s.RelayPort, s.PostfixSubmissionPort = ports[0], ports[1], ports[2], ports[3]
	s.Listeners = newListeners(ports[4:])
	s.XOAUTH2Only, s.OAuthBearerOnly = nil, nil
	if s.opts.singleMechs {
		x, o := newListeners(ports[4+listenerPorts:]), newListeners(ports[4+2*listenerPorts:])
		s.XOAUTH2Only, s.OAuthBearerOnly = &x, &o
	}
	s.Issuer = "http://" + Loopback(s.opPort)
	s.IntrospectionURL = s.Issuer + "/token/introspection"
	s.RevocationURL = s.Issuer + "/token/revocation"
	s.PostfixSubmission = "smtp://" + Loopback(s.PostfixSubmissionPort)

	for _, d := range []string{"log", "run", "postfix/etc", "postfix/queue"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o755); err != nil {
			return fmt.Errorf("e2e: %w", err)
		}
	}
	puid, pgid, err := lookupIDs("postfix", "postfix")
	if err != nil {
		return err
	}
	data := filepath.Join(s.Dir, "postfix", "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return fmt.Errorf("e2e: %w", err)
	}
	if err := os.Chown(data, puid, pgid); err != nil {
		return fmt.Errorf("e2e: %w", err)
	}
	if err := s.render(); err != nil {
		return err
	}
	s.opts.step("starting the OpenID provider on %s", s.Issuer)
	if err := s.startOP(ctx); err != nil {
		return err
	}
	s.opts.step("starting Postfix on %s", s.PostfixSubmission)
	if err := s.startPostfix(ctx); err != nil {
		return err
	}
	s.opts.step("starting Dovecot (IMAP, POP3, submission)")
	return s.startDovecot(ctx)
}

func (s *Stack) render() error {
	listen := "127.0.0.1"
	if s.IPv6 {
		listen += ", ::1"
	}
	d := confData{
		Dir: s.Dir, Issuer: s.Issuer, Listen: listen, Listeners: s.Listeners,
		LMTPPort: s.LMTPPort, RelayPort: s.RelayPort, PostfixSubmissionPort: s.PostfixSubmissionPort,
		OAuth:         "xoauth2 oauthbearer",
		DovecotClient: ClientDovecot, DovecotSecret: ClientDovecotSecret,
		IMAPClientLimit:     s.opts.imapClients,
		AuthDisabledInitial: initialResponsePrefixes(SMTPAuthDisabled),
		AuthDisabledUser:    SMTPAuthDisabled, AuthDisabledReply: "535 5.7.139 " + SMTPAuthDisabledText,
		Shared: Shared,
	}
	if s.opts.noOAuth {
		d.OAuth = ""
	}
	shared := d
	shared.IntrospectMailbox = Shared
	type confFile struct {
		tmpl, path string
		d          confData
	}
	files := []confFile{
		{"dovecot.conf.tmpl", "dovecot/dovecot.conf", d},
		{"dovecot-oauth2.conf.ext.tmpl", "dovecot/dovecot-oauth2.conf.ext", d},
		{"dovecot-oauth2.conf.ext.tmpl", "dovecot/dovecot-oauth2-shared.conf.ext", shared},
		{"main.cf.tmpl", "postfix/etc/main.cf", d},
		{"master.cf.tmpl", "postfix/etc/master.cf", d},
		{"auth-disabled-commands.tmpl", "postfix/etc/auth-disabled-commands", d},
		{"auth-disabled-reply.tmpl", "postfix/etc/auth-disabled-reply", d},
	}
	for i, l := range s.singleListeners() {
		one := d
		one.Listeners, one.Instance, one.OAuth = *l, "-"+singleMechanisms[i], singleMechanisms[i]
		files = append(files, confFile{"dovecot.conf.tmpl", "dovecot/dovecot" + one.Instance + ".conf", one})
	}
	for _, f := range files {
		var b bytes.Buffer
		if err := confTemplates.ExecuteTemplate(&b, f.tmpl, f.d); err != nil {
			return fmt.Errorf("e2e: render %s: %w", f.tmpl, err)
		}
		if err := os.WriteFile(filepath.Join(s.Dir, f.path), b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("e2e: %w", err)
		}
	}
	return nil
}

// singleListeners returns the listeners of the single-mechanism instances, in the order of
// singleMechanisms; none unless WithSingleMechanismServers.
func (s *Stack) singleListeners() []*Listeners {
	if s.XOAUTH2Only == nil {
		return nil
	}
	return []*Listeners{s.XOAUTH2Only, s.OAuthBearerOnly}
}

// Loopback returns "127.0.0.1:port".
func Loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// freePorts returns n distinct ports free on 127.0.0.1 (and on ::1 when v6 is set), reserved
// (reservePort) until release is called: nothing listens on them, and no other process gets
// them, until then; the stack's daemons can still bind them.
func freePorts(n int, v6 bool) (ports []int, release func(), err error) {
	var releases []func()
	release = func() {
		for _, r := range releases {
			r()
		}
	}
	for tries := 0; len(ports) < n; tries++ {
		if tries > 20*n {
			release()
			return nil, nil, errors.New("e2e: no free loopback ports")
		}
		p, r, err := reservePort(0, v6)
		if err != nil {
			if v6 {
				continue // the v6 twin of the port the kernel picked is taken: pick another
			}
			release()
			return nil, nil, fmt.Errorf("e2e: pick port: %w", err)
		}
		releases = append(releases, r)
		ports = append(ports, p)
	}
	return ports, release, nil
}

// ReservePorts returns n distinct ports free on 127.0.0.1, reserved until release is called:
// nothing listens on them and no other process picks them, but a server that binds with
// SO_REUSEADDR (mailkey serve, like any Go program) can. The sandbox gives them to mailkey
// serve's listeners, so that the ports it prints stay free until serve takes them.
func ReservePorts(n int) (ports []int, release func(), err error) { return freePorts(n, false) }

// releasePorts gives back the ports start reserved.
func (s *Stack) releasePorts() {
	if s.release != nil {
		s.release()
		s.release = nil
	}
}

// ClosedAddr returns a loopback address (127.0.0.1:PORT) on which nothing listens and, until
// t ends, nothing will: connecting to it is refused, however long the test takes.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	port, release, err := reservePort(0, false)
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	t.Cleanup(release)
	return Loopback(port)
}

// proc is a daemon started as a child of this process.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // exit status, valid after done is closed
}

func startProc(name string, cmd *exec.Cmd, logPath string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("e2e: %w", err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("e2e: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL after stopGrace, and waits for the exit.
func (p *proc) stop() {
	if p == nil || p.exited() {
		return
	}
	_ = signalPID(p.cmd.Process.Pid, sigTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitPorts waits until every port accepts connections on 127.0.0.1, or until ctx ends. It
// gives up early when p (if not nil) exits, or when check (if not nil) returns an error.
func waitPorts(ctx context.Context, p *proc, check func() error, ports ...int) error {
	for _, port := range ports {
		for {
			c, err := net.DialTimeout("tcp", Loopback(port), time.Second)
			if err == nil {
				c.Close()
				break
			}
			if p != nil && p.exited() {
				return fmt.Errorf("%s exited: %v", p.name, p.err)
			}
			if check != nil {
				if err := check(); err != nil {
					return err
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("port %d did not open: %w", port, ctx.Err())
			case <-time.After(50 * time.Millisecond): // the pace of the polling, not a bound
			}
		}
	}
	return nil
}

// startErr wraps a daemon start failure with the end of its logs, marked errAddrInUse when a
// port was taken.
func (s *Stack) startErr(name string, err error, logs ...string) error {
	var tails strings.Builder
	for _, l := range logs {
		tails.WriteString(tailFile(filepath.Join(s.Dir, "log", l), 15))
	}
	msg := fmt.Sprintf("e2e: %s: %v\n%s", name, err, tails.String())
	if strings.Contains(msg, "Address already in use") || strings.Contains(msg, "EADDRINUSE") {
		return fmt.Errorf("%s: %w", msg, errAddrInUse)
	}
	return errors.New(msg)
}

func (s *Stack) startPostfix(ctx context.Context) error {
	etc := filepath.Join(s.Dir, "postfix", "etc")
	out, err := exec.CommandContext(ctx, "postfix", "-c", etc, "start").CombinedOutput()
	if err != nil {
		return s.startErr("postfix start", fmt.Errorf("%v: %s", err, bytes.TrimSpace(out)), "postfix.log")
	}
	b, err := os.ReadFile(filepath.Join(s.Dir, "postfix", "queue", "pid", "master.pid"))
	if err != nil {
		return s.startErr("postfix", err, "postfix.log")
	}
	if s.postPID, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		return s.startErr("postfix", fmt.Errorf("master.pid: %w", err), "postfix.log")
	}
	alive := func() error {
		if !pidAlive(s.postPID) {
			return errors.New("postfix master exited")
		}
		return nil
	}
	if err := waitPorts(ctx, nil, alive, s.RelayPort); err != nil {
		return s.startErr("postfix", err, "postfix.log")
	}
	if err := alive(); err != nil { // what accepted may have been another process
		return s.startErr("postfix", err, "postfix.log")
	}
	return nil
}

// startDovecot starts the main instance, then the single-mechanism ones.
func (s *Stack) startDovecot(ctx context.Context) error {
	if err := s.startDovecotInstance(ctx, "", append(s.Listeners.ports(), s.LMTPPort)); err != nil {
		return err
	}
	for i, l := range s.singleListeners() {
		if err := s.startDovecotInstance(ctx, "-"+singleMechanisms[i], l.ports()); err != nil {
			return err
		}
	}
	return nil
}

// startDovecotInstance starts the Dovecot instance of dovecot/dovecot<instance>.conf and waits
// for its ports.
func (s *Stack) startDovecotInstance(ctx context.Context, instance string, ports []int) error {
	// a fresh base_dir: a stale anvil-auth-penalty socket would make the first logins wait 5 s
	base := filepath.Join(s.Dir, "run", "dovecot"+instance)
	if err := os.RemoveAll(base); err != nil {
		return fmt.Errorf("e2e: %w", err)
	}
	name, stderr, log := "dovecot"+instance, "dovecot"+instance+".stderr", "dovecot"+instance+".log"
	cmd := exec.Command("dovecot", "-F", "-c", filepath.Join(s.Dir, "dovecot", name+".conf"))
	p, err := startProc(name, cmd, filepath.Join(s.Dir, "log", stderr))
	if err != nil {
		return err
	}
	s.dovecot = append(s.dovecot, p)
	// A port that accepts connections is not proof that Dovecot listens there: another
	// process may (the ports are reserved, but only against processes that pick theirs from
	// the kernel), and Dovecot's master opens some listeners before it gives up on another
	// one. It logs "starting up" once all of its listeners are bound.
	if err := waitDovecotStarted(ctx, p, filepath.Join(s.Dir, "log", log)); err != nil {
		return s.startErr(name, err, stderr, log)
	}
	if err := waitPorts(ctx, p, nil, ports...); err != nil {
		return s.startErr(name, err, stderr, log)
	}
	return nil
}

// waitDovecotStarted waits until Dovecot's master logs that it is starting up, which it does
// once every listener is bound, or until it exits or ctx ends.
func waitDovecotStarted(ctx context.Context, p *proc, logPath string) error {
	for {
		if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte("master: Info: Dovecot v")) && bytes.Contains(b, []byte(" starting up")) {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited: %v", p.name, p.err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no start-up line in %s: %w", filepath.Base(logPath), ctx.Err())
		case <-time.After(50 * time.Millisecond): // the pace of the polling, not a bound
		}
	}
}

// stopAll stops whatever runs, newest first.
func (s *Stack) stopAll() error {
	var errs []error
	for i := len(s.dovecot) - 1; i >= 0; i-- {
		s.dovecot[i].stop()
	}
	s.dovecot = nil
	if s.postPID > 0 {
		if err := stopPID(s.postPID); err != nil {
			errs = append(errs, fmt.Errorf("postfix: %w", err))
		}
		s.postPID = 0
	}
	s.mu.Lock()
	s.op.stop()
	s.op = nil
	s.mu.Unlock()
	return errors.Join(errs...)
}

// stopPID stops a daemon that is not our child (Postfix's master) by its PID.
func stopPID(pid int) error {
	if !pidAlive(pid) {
		return nil
	}
	if err := signalPID(pid, sigTERM); err != nil {
		return err
	}
	deadline := time.Now().Add(stopGrace)
	killed := false
	for pidAlive(pid) {
		if time.Now().After(deadline) {
			if killed {
				return fmt.Errorf("pid %d did not stop", pid)
			}
			// A killed process still needs the CPU to exit: on a busy machine that takes
			// a while, so it gets another stopGrace.
			_ = signalPID(pid, sigKILL)
			killed, deadline = true, time.Now().Add(stopGrace)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// Close stops Dovecot, Postfix and the provider, by PID. It does not remove Dir. Calling it
// again returns the first result.
func (s *Stack) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.closeErr
	}
	s.closed = true
	s.mu.Unlock()
	err := s.stopAll()
	s.releasePorts()
	s.mu.Lock()
	s.closeErr = err
	s.mu.Unlock()
	return err
}

// DovecotLog returns Dovecot's log so far (login results and the reason for every failed
// OAuth login, e.g. "Introspection failed: Provided token is not valid").
func (s *Stack) DovecotLog() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "log", "dovecot.log"))
	return string(b)
}

// LogTails returns the last lines of every log of the stack, for failure reports.
func (s *Stack) LogTails() string {
	var b strings.Builder
	logs := []string{"op.log", "dovecot.stderr", "dovecot.log", "postfix.log"}
	for i := range s.singleListeners() {
		logs = append(logs, "dovecot-"+singleMechanisms[i]+".stderr", "dovecot-"+singleMechanisms[i]+".log")
	}
	for _, l := range logs {
		b.WriteString(tailFile(filepath.Join(s.Dir, "log", l), logTailLines))
	}
	return b.String()
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("--- %s (last %d lines)\n%s\n", filepath.Base(path), len(lines), strings.Join(lines, "\n"))
}

// MessageCount returns the number of messages in user's mailbox, asked with doveadm.
func (s *Stack) MessageCount(user, mailbox string) (int, error) {
	cmd := exec.Command("doveadm", "-c", filepath.Join(s.Dir, "dovecot", "dovecot.conf"),
		"mailbox", "status", "-u", user, "messages", mailbox)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("doveadm mailbox status: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	// "INBOX messages=N" (the mailbox name comes first when doveadm lists several fields)
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "messages="); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("doveadm mailbox status: unexpected output %q", out)
}

// WaitMessageCount polls MessageCount until user's mailbox holds at least n messages or ctx
// ends, and returns the last count.
func (s *Stack) WaitMessageCount(ctx context.Context, user, mailbox string, n int) (int, error) {
	for {
		c, err := s.MessageCount(user, mailbox)
		if err != nil || c >= n {
			return c, err
		}
		select {
		case <-ctx.Done():
			return c, fmt.Errorf("%s %s holds %d messages, want %d: %w", user, mailbox, c, n, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TLSConfig returns a client TLS configuration that trusts CAFile.
func (s *Stack) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.caPool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// HTTPClient returns the client the harness uses for the provider: no proxy, no cookies,
// redirects followed.
func (s *Stack) HTTPClient() *http.Client { return s.client }

// postTest calls one of the provider's /__test/ control endpoints.
func (s *Stack) postTest(ctx context.Context, path string, form url.Values) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("e2e: POST %s: %w", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
