package sasl

import (
	"encoding/base64"
	"strings"

	gosasl "github.com/emersion/go-sasl"
)

// InitialResponse returns the initial response a client sends for mech
// (XOAUTH2 or OAUTHBEARER, any case), as raw bytes: what
// `mailkey token --sasl` prints for clients that build the exchange
// themselves. host and port are used by OAUTHBEARER only and may be empty
// and zero.
func InitialResponse(mech, user, token, host string, port int) ([]byte, error) {
	var c gosasl.Client
	switch strings.ToUpper(mech) {
	case XOAUTH2:
		c = NewXOAUTH2Client(user, token)
	case OAuthBearer:
		c = NewOAuthBearerClient(&gosasl.OAuthBearerOptions{Username: user, Token: token, Host: host, Port: port})
	default:
		return nil, ErrUnsupportedMechanism
	}
	_, ir, err := c.Start()
	return ir, err
}

// InitialResponseBase64 is InitialResponse in standard, padded base64: the
// form that goes on the wire.
func InitialResponseBase64(mech, user, token, host string, port int) (string, error) {
	ir, err := InitialResponse(mech, user, token, host, port)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(ir), nil
}
