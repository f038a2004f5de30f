package provider

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ErrInsecureEndpoint is wrapped by CheckEndpoint when a URL is not HTTPS
// and does not point at a loopback address.
var ErrInsecureEndpoint = errors.New("endpoint must use https (http is allowed only on loopback: 127.0.0.0/8, ::1, localhost)")

// CheckEndpoint reports whether u is acceptable as an OAuth endpoint or
// issuer: an absolute https URL with a host and no fragment (RFC 6749
// section 3.1), or an http URL whose host is a loopback address or
// localhost, where nothing crosses the network.
func CheckEndpoint(u string) error {
	if u == "" {
		return errors.New("endpoint URL is empty")
	}
	pu, err := url.Parse(u)
	if err != nil {
		// Neither u nor the parser's text (which quotes u) is repeated:
		// user information in it may hold a password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("endpoint is not a URL: %v", err)
	}
	// User information first: every later message quotes u.
	if pu.User != nil {
		return fmt.Errorf("endpoint %q must not contain user information", pu.Redacted())
	}
	if pu.Fragment != "" || strings.Contains(u, "#") {
		return fmt.Errorf("endpoint %q must not contain a fragment (#…)", u)
	}
	switch strings.ToLower(pu.Scheme) {
	case "https":
		if pu.Hostname() == "" {
			return fmt.Errorf("endpoint %q has no host", u)
		}
		return nil
	case "http":
		if IsLoopbackHost(pu.Hostname()) {
			return nil
		}
		return fmt.Errorf("endpoint %q: %w", u, ErrInsecureEndpoint)
	case "":
		return fmt.Errorf("endpoint %q is not an absolute URL (want https://…)", u)
	default:
		return fmt.Errorf("endpoint %q: scheme %s: %w", u, pu.Scheme, ErrInsecureEndpoint)
	}
}

// IsLoopbackHost reports whether host (without port or brackets) is
// localhost or a loopback IP address (127.0.0.0/8, ::1). Other names are
// not resolved: a name that only resolves to loopback does not count.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
