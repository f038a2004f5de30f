package migrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/provider"
)

// muttToken is the token file of mutt_oauth2.py (mutt's contrib script,
// Debian: /usr/share/doc/mutt/examples/mutt_oauth2.py), as its
// DECRYPTION_PIPE hands it back: the script's global token dictionary,
// written with json.dumps. Later copies of the script (NeoMutt's) may add
// the client's ID and secret.
type muttToken struct {
	Registration string `json:"registration"`
	AuthFlow     string `json:"authflow"`
	Email        string `json:"email"`
	AccessToken  string `json:"access_token"`
	// AccessTokenExpiration is datetime.isoformat() of a naive local
	// time, "2026-12-07T15:04:05.123456", or "" before the first token.
	AccessTokenExpiration string `json:"access_token_expiration"`
	RefreshToken          string `json:"refresh_token"`
	ClientID              string `json:"client_id"`
	ClientSecret          string `json:"client_secret"`
}

// muttTimeLayouts are the forms Python's datetime.isoformat writes a naive
// time in: with microseconds, and without when they are zero.
var muttTimeLayouts = []string{"2006-01-02T15:04:05.999999", "2006-01-02T15:04:05"}

// readMutt reads a decrypted mutt_oauth2.py token file. The script names
// its app registrations ("google", "microsoft") after the providers they
// are for; a name that is also a preset's gives the provider, any other
// leaves it to the caller's settings.
func readMutt(data []byte, loc *time.Location) (*Grant, error) {
	var t muttToken
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, &CorruptError{Format: Mutt, Reason: jsonReason(err)}
	}
	if t.Registration == "" && t.Email == "" && t.RefreshToken == "" {
		return nil, &CorruptError{Format: Mutt, Reason: "it has no registration, email or refresh_token"}
	}
	if t.Email == "" {
		return nil, &CorruptError{Format: Mutt, Reason: "it names no email address"}
	}
	if t.RefreshToken == "" {
		return nil, &NoTokensError{Format: Mutt, Account: t.Email}
	}
	g := &Grant{Name: t.Email, AccessToken: t.AccessToken, RefreshToken: t.RefreshToken}
	if t.AccessTokenExpiration != "" {
		for _, layout := range muttTimeLayouts {
			if at, err := time.ParseInLocation(layout, t.AccessTokenExpiration, loc); err == nil {
				g.Expiry = at
				break
			}
		}
		if g.Expiry.IsZero() {
			return nil, &CorruptError{Format: Mutt, Reason: "access_token_expiration is not a time"}
		}
	}
	g.set("email", t.Email, "email from the token file")
	if p, err := provider.Lookup(t.Registration); err == nil && t.Registration != "" {
		g.set("provider", p.Name, fmt.Sprintf("provider %s from the script's registration %q", p.Name, t.Registration))
		if p.Tenanted {
			g.check("the script signs in through its registration's tenant, \"common\" unless it was changed: if yours names another, the same one", "tenant")
		}
	} else {
		g.check(fmt.Sprintf("the script's registration %q is none of mailkey's presets: which provider, and for a generic one its issuer or endpoints", t.Registration), "provider")
	}
	if t.ClientID != "" {
		g.set("client_id", t.ClientID, "client_id from the token file")
	} else {
		g.check("the token file holds no client ID: the registration's client_id and client_secret, from the script (a refresh token works only with the client it was issued to)", "client_id")
	}
	if t.ClientSecret != "" {
		g.set("client_secret", t.ClientSecret, "client_secret from the token file")
	}
	g.check("the script's registration names the IMAP, POP and SMTP servers too, and the token file does not: the provider's preset servers apply", "imap", "pop3", "smtp")
	return g, nil
}

// set adds a setting, and says where it came from.
func (g *Grant) set(key string, value any, from string) {
	g.Settings = append(g.Settings, config.KV{Key: key, Value: value})
	if from != "" {
		g.Mapped = append(g.Mapped, from)
	}
}

// jsonReason words a JSON error without quoting the input.
func jsonReason(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("it is not valid JSON (byte %d)", syn.Offset)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) && typ.Field != "" {
		return fmt.Sprintf("its field %q has the wrong type", strings.TrimPrefix(typ.Field, "."))
	}
	return "it is not a JSON object"
}
