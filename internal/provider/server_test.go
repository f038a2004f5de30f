package provider

import (
	"errors"
	"strings"
	"testing"
)

func TestParseServer(t *testing.T) {
	tests := []struct {
		proto    Protocol
		in       string
		want     string // canonical String(); "" means an error is expected
		implicit bool
		addr     string
	}{
		{IMAP, "imaps://imap.gmail.com:993", "imaps://imap.gmail.com:993", true, "imap.gmail.com:993"},
		{IMAP, "imaps://imap.gmail.com", "imaps://imap.gmail.com:993", true, "imap.gmail.com:993"},
		{IMAP, "imaps://imap.gmail.com/", "imaps://imap.gmail.com:993", true, "imap.gmail.com:993"},
		{IMAP, "IMAPS://Mail.Example:10993", "imaps://Mail.Example:10993", true, "Mail.Example:10993"},
		{IMAP, "imap://mail.example", "imap://mail.example:143", false, "mail.example:143"},
		{IMAP, "imap://mail.example:1143", "imap://mail.example:1143", false, "mail.example:1143"},
		{IMAP, "mail.example:993", "imaps://mail.example:993", true, "mail.example:993"},
		{IMAP, "mail.example:143", "imap://mail.example:143", false, "mail.example:143"},
		{IMAP, "mail.example", "imaps://mail.example:993", true, "mail.example:993"},
		{IMAP, "127.0.0.1:10143", "imap://127.0.0.1:10143", false, "127.0.0.1:10143"},
		{IMAP, "[::1]:993", "imaps://[::1]:993", true, "[::1]:993"},
		{IMAP, "imaps://[::1]:993", "imaps://[::1]:993", true, "[::1]:993"},
		{IMAP, "imap://[::1]", "imap://[::1]:143", false, "[::1]:143"},
		{IMAP, "[::1]", "imaps://[::1]:993", true, "[::1]:993"},
		{POP3, "pop3s://pop.gmail.com:995", "pop3s://pop.gmail.com:995", true, "pop.gmail.com:995"},
		{POP3, "pop3://pop.example", "pop3://pop.example:110", false, "pop.example:110"},
		{POP3, "pop.example:995", "pop3s://pop.example:995", true, "pop.example:995"},
		{POP3, "pop.example:110", "pop3://pop.example:110", false, "pop.example:110"},
		{SMTP, "smtps://smtp.gmail.com", "smtps://smtp.gmail.com:465", true, "smtp.gmail.com:465"},
		{SMTP, "smtp://smtp.office365.com", "smtp://smtp.office365.com:587", false, "smtp.office365.com:587"},
		{SMTP, "smtp.example:465", "smtps://smtp.example:465", true, "smtp.example:465"},
		{SMTP, "smtp.example:587", "smtp://smtp.example:587", false, "smtp.example:587"},
		{SMTP, "smtp.example:25", "smtp://smtp.example:25", false, "smtp.example:25"},
		// Errors.
		{IMAP, "", "", false, ""},
		{IMAP, " imaps://x", "", false, ""},
		{IMAP, "smtps://smtp.gmail.com:465", "", false, ""},
		{IMAP, "pop3s://x", "", false, ""},
		{SMTP, "imap://x", "", false, ""},
		{IMAP, "https://x", "", false, ""},
		{IMAP, "imaps://user@x:993", "", false, ""},
		{IMAP, "imaps://x:993/INBOX", "", false, ""},
		{IMAP, "imaps://x:993?a=b", "", false, ""},
		{IMAP, "imaps://", "", false, ""},
		{IMAP, "imaps://:993", "", false, ""},
		{IMAP, "x:0", "", false, ""},
		{IMAP, "x:65536", "", false, ""},
		{IMAP, "x:+993", "", false, ""},
		{IMAP, "x:abc", "", false, ""},
		{IMAP, "x:", "", false, ""},
		{IMAP, "::1", "", false, ""},
		{IMAP, "::1:993", "", false, ""},
		{IMAP, "[::1", "", false, ""},
		{IMAP, "[::1]993", "", false, ""},
		{IMAP, "[127.0.0.1]:993", "", false, ""},
		{IMAP, "[::1]:", "", false, ""},
		{IMAP, "bad host:993", "", false, ""},
		{Protocol("jmap"), "x:1", "", false, ""},
	}
	for _, tt := range tests {
		srv, err := ParseServer(tt.proto, tt.in)
		if tt.want == "" {
			var se *ServerError
			if !errors.As(err, &se) {
				t.Errorf("ParseServer(%s, %q) = %+v, %v; want *ServerError", tt.proto, tt.in, srv, err)
			} else if tt.proto != "jmap" && !strings.Contains(se.Hint(), "HOST:PORT") {
				t.Errorf("ParseServer(%s, %q): hint %q does not say what is valid", tt.proto, tt.in, se.Hint())
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseServer(%s, %q): %v", tt.proto, tt.in, err)
			continue
		}
		if srv.String() != tt.want || srv.ImplicitTLS != tt.implicit || srv.Addr() != tt.addr || srv.Protocol != tt.proto {
			t.Errorf("ParseServer(%s, %q) = %+v (%s, %s); want %s implicit=%v addr=%s",
				tt.proto, tt.in, srv, srv, srv.Addr(), tt.want, tt.implicit, tt.addr)
		}
		// The canonical form parses back to the same value.
		again, err := ParseServer(tt.proto, srv.String())
		if err != nil || again != srv {
			t.Errorf("round trip of %s: %+v, %v", srv, again, err)
		}
	}
}

func TestServerErrorHint(t *testing.T) {
	_, err := ParseServer(SMTP, "imaps://x")
	var se *ServerError
	if !errors.As(err, &se) {
		t.Fatal(err)
	}
	if want := "write smtps://HOST:465 (TLS), smtp://HOST:587 (STARTTLS) or HOST:PORT"; se.Hint() != want {
		t.Errorf("Hint() = %q, want %q", se.Hint(), want)
	}
	if !strings.Contains(err.Error(), "scheme imaps:// is not for smtp") {
		t.Errorf("Error() = %q", err)
	}
}

func FuzzParseServer(f *testing.F) {
	for _, s := range []string{"imaps://a:993", "[::1]:1", "a", "smtp://[::1]", "pop3s://x:65535/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range Protocols {
			srv, err := ParseServer(p, s)
			if err != nil {
				continue
			}
			again, err := ParseServer(p, srv.String())
			if err != nil || again != srv {
				t.Fatalf("%q parsed to %+v, whose String %q parses to %+v, %v", s, srv, srv, again, err)
			}
		}
	})
}

func TestCheckEndpoint(t *testing.T) {
	ok := []string{
		"https://login.example/token",
		"https://login.example:8443/a?b=c",
		"http://127.0.0.1:8080/token",
		"http://127.8.9.10/token",
		"http://[::1]:9000/token",
		"http://localhost:3000/auth",
		"http://LOCALHOST/auth",
		"HTTPS://login.example/x",
	}
	bad := []string{
		"",
		"http://login.example/token",
		"http://10.0.0.1/token",
		"http://[::2]/token",
		"http://localhost.evil.example/token",
		"http://127.0.0.1.nip.io/token",
		"ftp://login.example/",
		"login.example/token",
		"/token",
		"https:///token",
		"https://login.example/token#frag",
		"https://user:pw@login.example/token",
		"https://bad host/",
	}
	for _, u := range ok {
		if err := CheckEndpoint(u); err != nil {
			t.Errorf("CheckEndpoint(%q) = %v", u, err)
		}
	}
	for _, u := range bad {
		if err := CheckEndpoint(u); err == nil {
			t.Errorf("CheckEndpoint(%q) = nil, want an error", u)
		}
	}
	if err := CheckEndpoint("http://example.com/"); !errors.Is(err, ErrInsecureEndpoint) {
		t.Errorf("http on a public host: %v, want ErrInsecureEndpoint", err)
	}
	for _, u := range []string{
		"https://user:hunter2@login.example/",
		// Other faults were reported first, quoting the whole URL.
		"https://user:hunter2@login.example/token#frag",
		"http://user:hunter2@login.example/token",
		"https://user:hunter2@login.example/%zz",
		"https://user:hunter2@login.example:port/",
	} {
		if err := CheckEndpoint(u); err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("CheckEndpoint(%q) = %v (must be refused without echoing the password)", u, err)
		}
	}
}
