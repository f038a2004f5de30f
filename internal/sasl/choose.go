package sasl

import "strings"

// Choose picks the OAuth mechanism to use from what a server advertised.
//
// advertised holds mechanism names as a server lists them; an IMAP-style
// "AUTH=" prefix is ignored, case does not matter. prefer is "xoauth2",
// "oauthbearer" (any case) or "" for no preference. The preferred mechanism
// wins when offered; otherwise the other one is used. With no preference
// XOAUTH2 comes first: every provider that offers OAuth offers it
// (Microsoft offers nothing else), while OAUTHBEARER support is patchier.
//
// An unknown prefer gives ErrUnsupportedMechanism; a server offering
// neither gives a *NoMechanismError naming what it offered.
func Choose(advertised []string, prefer string) (string, error) {
	order := []string{XOAUTH2, OAuthBearer}
	switch strings.ToUpper(prefer) {
	case "", XOAUTH2:
	case OAuthBearer:
		order = []string{OAuthBearer, XOAUTH2}
	default:
		return "", ErrUnsupportedMechanism
	}
	offered := map[string]bool{}
	for _, m := range advertised {
		m = strings.ToUpper(strings.TrimSpace(m))
		offered[strings.TrimPrefix(m, "AUTH=")] = true
	}
	for _, m := range order {
		if offered[m] {
			return m, nil
		}
	}
	return "", &NoMechanismError{Offered: append([]string(nil), advertised...)}
}
