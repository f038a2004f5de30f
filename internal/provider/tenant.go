package provider

import "strings"

// ValidTenant reports whether s names a Microsoft identity platform tenant:
// "common", "organizations", "consumers", a directory GUID
// (8-4-4-4-12 hexadecimal digits) or a DNS domain such as
// contoso.onmicrosoft.com. Letters may be of either case.
func ValidTenant(s string) bool {
	switch strings.ToLower(s) {
	case "common", "organizations", "consumers":
		return true
	}
	return isGUID(s) || isDomain(s)
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// isDomain accepts host names with at least two labels of letters, digits
// and inner hyphens (RFC 1123), at most 253 bytes long.
func isDomain(s string) bool {
	if len(s) > 253 || !strings.Contains(s, ".") {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
