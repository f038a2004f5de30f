package provider

import (
	"slices"
	"strings"
)

// multiTenants are the Microsoft identity platform's tenants that stand for
// many directories: any account, work or school accounts, personal ones.
var multiTenants = []string{"common", "organizations", "consumers"}

// ValidTenant reports whether s names a Microsoft identity platform tenant:
// one of multiTenants, a directory GUID (8-4-4-4-12 hexadecimal digits) or
// a DNS domain such as contoso.onmicrosoft.com. Letters may be of either
// case.
func ValidTenant(s string) bool {
	return slices.Contains(multiTenants, strings.ToLower(s)) || isGUID(s) || isDomain(s)
}

// MultiTenant reports whether tenant, on p, stands for many directories
// rather than one: ID tokens then name the user's own tenant as issuer, and
// app-only tokens cannot be had (they need one directory). An empty tenant
// means p.DefaultTenant. It is false on presets that take no tenant.
func (p Preset) MultiTenant(tenant string) bool {
	if tenant == "" {
		tenant = p.DefaultTenant
	}
	return p.Tenanted && slices.Contains(multiTenants, strings.ToLower(tenant))
}

// TenantToChoose reports whether the account's tenant is a choice worth
// explaining when it names none: p's default tenant is "common", which
// admits every kind of account, while the app's registration decides which
// tenants work (a single-tenant app needs its own). Outlook.com's default,
// "consumers", is the only one it takes.
func (p Preset) TenantToChoose() bool {
	return p.Tenanted && strings.EqualFold(p.DefaultTenant, multiTenants[0])
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
