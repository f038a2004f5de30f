package pop3

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	gosasl "github.com/emersion/go-sasl"

	"github.com/mailkey/mailkey/internal/sasl"
)

// A token-shaped value that must never show up in an error.
const secretToken = "SECRET.tok_en-0123456789"

func containsSecret(err error, secret string) bool {
	return err != nil && secret != "" && strings.Contains(err.Error(), secret)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestAuthWithInitialResponse(t *testing.T) {
	ir := "user=alice@example.test\x01auth=Bearer " + secretToken + "\x01\x01"
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("AUTH XOAUTH2 " + b64(ir))
		s.send("+OK Logged in.\r\n")
	})
	if err := c.Auth(sasl.NewXOAUTH2Client("alice@example.test", secretToken), AuthOptions{}); err != nil {
		t.Fatal(err)
	}
}

// The two-line form: AUTH XOAUTH2, the server's empty challenge "+ ", then
// the initial response on its own line.
func TestAuthWithoutInitialResponse(t *testing.T) {
	ir := "user=alice@example.test\x01auth=Bearer " + secretToken + "\x01\x01"
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("AUTH XOAUTH2")
		s.send("+ \r\n")
		s.expect(b64(ir))
		s.send("+OK Logged in.\r\n")
	})
	err := c.Auth(sasl.NewXOAUTH2Client("alice@example.test", secretToken), AuthOptions{NoInitialResponse: true})
	if err != nil {
		t.Fatal(err)
	}
}

// RFC 5034 §4: an AUTH line over 255 octets must not carry the initial
// response. Microsoft's tokens (JWTs) are far longer than that.
func TestAuthLongInitialResponseUsesTwoLines(t *testing.T) {
	token := strings.Repeat("J", 1500)
	ir := "user=alice@example.test\x01auth=Bearer " + token + "\x01\x01"
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("AUTH XOAUTH2")
		s.send("+\r\n") // a bare "+" is accepted too
		s.expect(b64(ir))
		s.send("+OK\r\n")
	})
	if err := c.Auth(sasl.NewXOAUTH2Client("alice@example.test", token), AuthOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestAuthEmptyInitialResponse(t *testing.T) {
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("AUTH EXTERNAL =")
		s.send("+OK\r\n")
	})
	if err := c.Auth(gosasl.NewExternalClient(""), AuthOptions{}); err != nil {
		t.Fatal(err)
	}
}

// Dovecot's answer to a bad XOAUTH2 token, byte for byte (e2e recipe §6):
// the JSON error challenge, the client's empty line, then -ERR [AUTH].
func TestAuthXOAUTH2FailureDovecot(t *testing.T) {
	const challenge = "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJtYWlsIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwOi8vMTI3LjAuMC4xOjE4MDgwLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0="
	ir := "user=alice@example.test\x01auth=Bearer " + secretToken + "\x01\x01"
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("AUTH XOAUTH2 " + b64(ir))
		s.send("+ " + challenge + "\r\n")
		s.expect("")
		s.send("-ERR [AUTH] Authentication failed.\r\n")
		s.expect("NOOP")
		s.send("+OK\r\n")
	})
	client := sasl.NewXOAUTH2Client("alice@example.test", secretToken)
	err := c.Auth(client, AuthOptions{})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Auth() = %v, want *Error", err)
	}
	if e.Command != "AUTH" || e.Code != "AUTH" || e.Text != "Authentication failed." ||
		e.Line != "-ERR [AUTH] Authentication failed." {
		t.Errorf("Error = %+v", e)
	}
	if e.Temporary() {
		t.Error("[AUTH] is not temporary")
	}
	f, ferr := sasl.DecodeFailure(e.Challenge)
	if ferr != nil || f.Status != "401" || f.Scope != "mail" ||
		f.OpenIDConfiguration != "http://127.0.0.1:18080/.well-known/openid-configuration" {
		t.Errorf("challenge %q: %+v %v", e.Challenge, f, ferr)
	}
	if cf := client.Failure(); cf == nil || cf.Status != "401" {
		t.Errorf("client.Failure() = %+v", cf)
	}
	if containsSecret(err, secretToken) || strings.Contains(err.Error(), b64(ir)) {
		t.Errorf("error leaks the token: %v", err)
	}
	if err := c.Noop(); err != nil {
		t.Errorf("connection should stay usable: %v", err)
	}
}

// OAUTHBEARER answers the error challenge with 0x01 ("AQ==").
func TestAuthOAuthBearerFailure(t *testing.T) {
	const challenge = "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwOi8vMTI3LjAuMC4xOjE4MDgwLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0="
	ir := "n,a=alice@example.test,\x01host=127.0.0.1\x01port=10110\x01auth=Bearer " + secretToken + "\x01\x01"
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("AUTH OAUTHBEARER " + b64(ir))
		s.send("+ " + challenge + "\r\n")
		s.expect("AQ==")
		s.send("-ERR [AUTH] Authentication failed.\r\n")
	})
	client := sasl.NewOAuthBearerClient(&gosasl.OAuthBearerOptions{
		Username: "alice@example.test", Token: secretToken, Host: "127.0.0.1", Port: 10110})
	err := c.Auth(client, AuthOptions{})
	var e *Error
	if !errors.As(err, &e) || e.Code != "AUTH" {
		t.Fatalf("Auth() = %v", err)
	}
	if f := client.Failure(); f == nil || f.Status != "invalid_token" {
		t.Errorf("client.Failure() = %+v", f)
	}
}

// Dovecot when the authorization server is down: no challenge, straight
// to -ERR [SYS/TEMP].
func TestAuthTemporaryFailure(t *testing.T) {
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("AUTH XOAUTH2")
		s.send("+ \r\n")
		s.expect(b64("user=alice@example.test\x01auth=Bearer " + secretToken + "\x01\x01"))
		s.send("-ERR [SYS/TEMP] Temporary authentication failure. [vm:2026-11-25 09:00:33]\r\n")
	})
	err := c.Auth(sasl.NewXOAUTH2Client("alice@example.test", secretToken), AuthOptions{NoInitialResponse: true})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Auth() = %v", err)
	}
	if e.Code != "SYS/TEMP" || !e.Temporary() || e.Text != "Temporary authentication failure. [vm:2026-11-25 09:00:33]" {
		t.Errorf("Error = %+v", e)
	}
	if e.Challenge != nil {
		t.Errorf("Challenge = %q, want none", e.Challenge)
	}
}

type failingClient struct{}

func (failingClient) Start() (string, []byte, error) { return "X-TEST", nil, nil }
func (failingClient) Next([]byte) ([]byte, error)    { return nil, errors.New("mechanism gave up") }

// When the mechanism fails, the exchange is cancelled with "*".
func TestAuthCancel(t *testing.T) {
	c := mustPipeClient(t, func(s *fakeServer) {
		s.expect("AUTH X-TEST")
		s.send("+ " + b64("challenge") + "\r\n")
		s.expect("*")
		s.send("-ERR [AUTH] Authentication cancelled\r\n")
		s.expect("AUTH X-TEST")
		s.send("+ not base64!\r\n")
		s.expect("*")
		s.send("-ERR cancelled\r\n")
		s.expect("NOOP")
		s.send("+OK\r\n")
	})
	if err := c.Auth(failingClient{}, AuthOptions{}); err == nil || !strings.Contains(err.Error(), "mechanism gave up") {
		t.Errorf("Auth() = %v", err)
	}
	if err := c.Auth(failingClient{}, AuthOptions{}); !errors.Is(err, ErrMalformedResponse) {
		t.Errorf("Auth() with bad base64 = %v", err)
	}
	if err := c.Noop(); err != nil {
		t.Errorf("connection should stay usable: %v", err)
	}
}

func TestAuthStartError(t *testing.T) {
	c := mustPipeClient(t, func(s *fakeServer) {}) // nothing may reach the server
	err := c.Auth(sasl.NewXOAUTH2Client("alice", secretToken+"\r\nQUIT"), AuthOptions{})
	if !errors.Is(err, sasl.ErrInvalidToken) || containsSecret(err, secretToken) {
		t.Errorf("Auth() = %v", err)
	}
}
