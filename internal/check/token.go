package check

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mailkey/mailkey/internal/store"
)

// maxJWTSize bounds what parseJWT decodes: Microsoft's access tokens are
// 1.5–3 KiB; anything much larger is not a token we can describe.
const maxJWTSize = 16 << 10

// Claims is what a JWT access token (RFC 7519, RFC 9068) says about
// itself, decoded without verifying the signature: for display and
// diagnosis only, never to trust. Microsoft's access tokens are JWTs;
// Google's and most others are opaque.
type Claims struct {
	Issuer   string    `json:"issuer,omitempty"`
	Audience []string  `json:"audience,omitempty"`
	Scopes   []string  `json:"scopes,omitempty"` // scp, or roles for app-only tokens
	User     string    `json:"user,omitempty"`   // upn, preferred_username, unique_name or email
	AppID    string    `json:"app_id,omitempty"` // appid or azp
	Tenant   string    `json:"tenant,omitempty"` // tid
	Expiry   time.Time `json:"expiry,omitzero"`
}

// ParseClaims decodes the payload of a JWT access token. It returns nil
// for an opaque token.
func ParseClaims(token string) *Claims {
	if len(token) > maxJWTSize || strings.Count(token, ".") != 2 {
		return nil
	}
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal(payload, &raw) != nil {
		return nil
	}
	str := func(key string) string {
		var s string
		if v, ok := raw[key]; ok && json.Unmarshal(v, &s) == nil {
			return s
		}
		return ""
	}
	list := func(key string) []string {
		v, ok := raw[key]
		if !ok {
			return nil
		}
		var one string
		if json.Unmarshal(v, &one) == nil {
			return strings.Fields(one)
		}
		var many []string
		if json.Unmarshal(v, &many) == nil {
			return many
		}
		return nil
	}
	c := &Claims{Issuer: str("iss"), Audience: list("aud"), Tenant: str("tid")}
	if c.Scopes = list("scp"); c.Scopes == nil {
		c.Scopes = list("roles")
	}
	for _, k := range []string{"upn", "preferred_username", "unique_name", "email"} {
		if c.User = str(k); c.User != "" {
			break
		}
	}
	if c.AppID = str("appid"); c.AppID == "" {
		c.AppID = str("azp")
	}
	if v, ok := raw["exp"]; ok {
		var n json.Number
		if json.Unmarshal(v, &n) == nil {
			if secs, err := n.Int64(); err == nil {
				c.Expiry = time.Unix(secs, 0)
			}
		}
	}
	return c
}

// describeToken words a token record for the checklist: expiry, scopes,
// owner and, for a JWT, its claims. The token itself is never part of it.
func describeToken(rec *store.Record, claims *Claims, now time.Time) string {
	var parts []string
	switch {
	case rec.Expiry.IsZero():
		parts = append(parts, "no stated expiry")
	case rec.Expiry.After(now):
		parts = append(parts, fmt.Sprintf("valid for %s (until %s)", roundDuration(rec.Expiry.Sub(now)), rec.Expiry.Local().Format(time.DateTime)))
	default:
		parts = append(parts, "expired "+rec.Expiry.Local().Format(time.DateTime))
	}
	if len(rec.Scopes) > 0 {
		parts = append(parts, "scopes "+strings.Join(rec.Scopes, " "))
	}
	if rec.Identity != "" {
		parts = append(parts, "signed in as "+rec.Identity)
	}
	if claims != nil {
		jwt := []string{}
		if len(claims.Audience) > 0 {
			jwt = append(jwt, "aud "+strings.Join(claims.Audience, " "))
		}
		if len(claims.Scopes) > 0 {
			jwt = append(jwt, "scp "+strings.Join(claims.Scopes, " "))
		}
		if claims.User != "" {
			jwt = append(jwt, "user "+claims.User)
		}
		if !claims.Expiry.IsZero() {
			jwt = append(jwt, "exp "+claims.Expiry.Local().Format(time.DateTime))
		}
		parts = append(parts, "JWT: "+strings.Join(jwt, ", "))
	}
	return strings.Join(parts, "; ")
}

func roundDuration(d time.Duration) time.Duration {
	if d > time.Hour {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}

func itoa(n int) string { return strconv.Itoa(n) }
