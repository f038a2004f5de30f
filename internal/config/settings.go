package config

// Settings returns the account's settings as written, in the form and
// order mailkey add writes them: what another configuration needs to hold
// the same account. Paths are absolute.
// client_secret and client_secret_cmd are among them: treat the result as
// secret.
func (a *Account) Settings() []KV {
	var set []KV
	str := func(key, v string) {
		if v != "" {
			set = append(set, KV{Key: key, Value: v})
		}
	}
	str("provider", a.Provider)
	str("email", a.Email)
	str("mailbox", a.Mailbox)
	str("client_id", a.ClientID)
	str("client_secret", a.ClientSecret)
	str("client_secret_cmd", a.ClientSecretCmd)
	str("tenant", a.Tenant)
	str("cloud", a.Cloud)
	str("issuer", a.Issuer)
	str("auth_url", a.AuthURL)
	str("token_url", a.TokenURL)
	str("device_url", a.DeviceURL)
	str("revoke_url", a.RevokeURL)
	str("introspect_url", a.IntrospectURL)
	if len(a.Scopes) > 0 {
		set = append(set, KV{Key: "scopes", Value: append([]string(nil), a.Scopes...)})
	}
	str("imap", a.IMAP)
	str("pop3", a.POP3)
	str("smtp", a.SMTP)
	if a.protocols != nil {
		set = append(set, KV{Key: "protocols", Value: append([]string(nil), a.protocols...)})
	}
	str("ca_file", a.CAFile)
	str("flow", a.Flow)
	str("certificate_file", a.CertificateFile)
	str("private_key_file", a.PrivateKeyFile)
	str("service_account_file", a.ServiceAccountFile)
	str("sasl", a.SASL)
	return set
}
