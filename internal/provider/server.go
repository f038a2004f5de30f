package provider

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Server is a parsed mail server address.
type Server struct {
	// Scheme is the canonical URL scheme: imaps, imap, pop3s, pop3, smtps
	// or smtp.
	Scheme string
	// Host is a name or an IP address, without brackets.
	Host string
	Port int
	// ImplicitTLS is true for imaps, pop3s and smtps: TLS starts at
	// connect. Otherwise the client must upgrade with STARTTLS (RFC 2595,
	// RFC 3207) and must refuse to continue without it.
	ImplicitTLS bool
	Protocol    Protocol
}

type schemeInfo struct {
	implicit, starttls string
	implicitPort       int
	starttlsPort       int
}

var schemes = map[Protocol]schemeInfo{
	IMAP: {"imaps", "imap", 993, 143},
	POP3: {"pop3s", "pop3", 995, 110},
	// smtp:// means message submission (RFC 6409) with STARTTLS, so its
	// default port is 587, not 25.
	SMTP: {"smtps", "smtp", 465, 587},
}

// ServerError is returned by ParseServer.
type ServerError struct {
	Protocol Protocol
	Input    string
	Reason   string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("invalid %s server %q: %s", e.Protocol, e.Input, e.Reason)
}

// Hint says which forms ParseServer accepts for the error's protocol.
func (e *ServerError) Hint() string {
	si, ok := schemes[e.Protocol]
	if !ok {
		return "valid protocols: imap, pop3, smtp"
	}
	return fmt.Sprintf("write %s://HOST:%d (TLS), %s://HOST:%d (STARTTLS) or HOST:PORT",
		si.implicit, si.implicitPort, si.starttls, si.starttlsPort)
}

// ParseServer parses a mail server address for proto:
//
//	imaps://HOST[:PORT]   implicit TLS (default port 993)
//	imap://HOST[:PORT]    STARTTLS, required (default port 143)
//	pop3s:// pop3://      likewise, ports 995 and 110
//	smtps:// smtp://      likewise, ports 465 and 587 (submission)
//	HOST:PORT             implicit TLS on 993, 995 and 465, STARTTLS on others
//	HOST                  implicit TLS on the protocol's TLS port
//
// IPv6 addresses go in brackets: imaps://[::1]:993 or [::1]:993. A scheme
// of another protocol, a path, a query or user information is an error.
func ParseServer(proto Protocol, s string) (Server, error) {
	si, ok := schemes[proto]
	if !ok {
		return Server{}, &ServerError{Protocol: proto, Input: s, Reason: "unknown protocol"}
	}
	fail := func(format string, args ...any) (Server, error) {
		return Server{}, &ServerError{Protocol: proto, Input: s, Reason: fmt.Sprintf(format, args...)}
	}
	if strings.TrimSpace(s) != s || s == "" {
		return fail("empty or surrounded by spaces")
	}
	srv := Server{Protocol: proto}
	hostport := s
	if scheme, rest, found := strings.Cut(s, "://"); found {
		switch strings.ToLower(scheme) {
		case si.implicit:
			srv.Scheme, srv.ImplicitTLS = si.implicit, true
		case si.starttls:
			srv.Scheme = si.starttls
		default:
			return fail("scheme %s:// is not for %s", scheme, proto)
		}
		rest = strings.TrimSuffix(rest, "/")
		if strings.Contains(rest, "@") {
			return fail("user information is not allowed (the account's email is the user)")
		}
		if strings.ContainsAny(rest, "/?#") {
			return fail("a path, query or fragment is not allowed")
		}
		hostport = rest
	}
	host, port, err := splitHostPort(hostport)
	if err != nil {
		return fail("%s", err.Error())
	}
	switch {
	case port == 0 && srv.Scheme == "":
		srv.Scheme, srv.ImplicitTLS, port = si.implicit, true, si.implicitPort
	case port == 0 && srv.ImplicitTLS:
		port = si.implicitPort
	case port == 0:
		port = si.starttlsPort
	case srv.Scheme == "" && (port == 993 || port == 995 || port == 465):
		srv.Scheme, srv.ImplicitTLS = si.implicit, true
	case srv.Scheme == "":
		srv.Scheme = si.starttls
	}
	srv.Host, srv.Port = host, port
	return srv, nil
}

// splitHostPort splits HOST, HOST:PORT, [V6] or [V6]:PORT; port 0 means
// none was given.
func splitHostPort(s string) (string, int, error) {
	if s == "" {
		return "", 0, fmt.Errorf("no host")
	}
	var host, port string
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("missing ] after IPv6 address")
		}
		host = s[1:end]
		rest := s[end+1:]
		if rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return "", 0, fmt.Errorf("unexpected text after ]")
			}
			port = rest[1:]
			if port == "" {
				return "", 0, fmt.Errorf("empty port")
			}
		}
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil {
			return "", 0, fmt.Errorf("brackets must hold an IPv6 address")
		}
	case strings.Count(s, ":") > 1:
		return "", 0, fmt.Errorf("an IPv6 address must be in brackets, as in [::1]:993")
	case strings.Contains(s, ":"):
		host, port, _ = strings.Cut(s, ":")
		if port == "" {
			return "", 0, fmt.Errorf("empty port")
		}
	default:
		host = s
	}
	if host == "" {
		return "", 0, fmt.Errorf("no host")
	}
	if !strings.HasPrefix(s, "[") && !validHostName(host) {
		return "", 0, fmt.Errorf("host has characters not allowed in a host name")
	}
	if port == "" {
		return host, 0, nil
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || port[0] == '+' {
		return "", 0, fmt.Errorf("port must be a number from 1 to 65535")
	}
	return host, n, nil
}

// validHostName accepts DNS names (letters, digits, hyphens, dots,
// underscores as some internal names use them) and IPv4 addresses.
func validHostName(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// String returns the canonical URL form, e.g. "imaps://imap.gmail.com:993"
// or "smtp://[::1]:587". ParseServer(s.Protocol, s.String()) returns s.
func (s Server) String() string {
	return s.Scheme + "://" + s.Addr()
}

// Addr returns HOST:PORT for net.Dial, with brackets around IPv6 hosts.
func (s Server) Addr() string {
	return net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
}
