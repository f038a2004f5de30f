// Package config loads, validates and edits mailkey's configuration file,
// a TOML document (https://toml.io, v1.0 and the v1.1 additions go-toml
// reads).
//
// Path says where the file is. Load reads it without network I/O and
// reports every problem at once as Errors, each an *Error naming file,
// line, column and field, with a hint saying what would be valid; values
// of secrets never appear in them. Account.Resolve merges an account with
// its provider preset (package provider), running OAuth discovery for the
// generic provider. AddAccount changes one account while keeping every
// other byte of the file.
//
// # Schema
//
//	refresh_margin = "5m"   # refresh tokens with less than this left, at most half their lifetime (default 5m, under 1h)
//
//	[proxy]                 # listeners of mailkey serve; "" turns one off
//	imap  = "127.0.0.1:1143"    # default; plain, clients may use STARTTLS
//	pop3  = "127.0.0.1:1110"    # default
//	smtp  = "127.0.0.1:1587"    # default
//	imaps = ""                  # implicit TLS listeners, off by default
//	pop3s = ""
//	smtps = ""
//	cert_file = ""              # listener certificate and key (PEM); both or
//	key_file  = ""              #   neither: default is generated in the state dir
//	allow_non_loopback = false  # needed for a TLS listener or the status page
//	                            #   beyond loopback; plain listeners stay on loopback
//	status = "127.0.0.1:8025"   # default; status page, /metrics, /healthz
//	log_format = "text"         # or "json"
//	agent = true                # default; answer mailkey token on STATE/agent.sock
//
//	[accounts.work]             # NAME: 1-64 of A-Z a-z 0-9 . _ - @, not starting with '.'
//	provider  = "microsoft"     # required: google, microsoft, outlook, yahoo, aol, fastmail, generic
//	email     = "a@contoso.com" # required: who signs in; also the mailbox, unless mailbox is set
//	mailbox   = "shared@contoso.com" # optional: a shared or delegated mailbox that email's
//	                            #   token opens (the SASL user); default: email's own
//	client_id = "…"             # required, except with flow = "service_account"
//	client_secret = "…"         # optional; or client_secret_cmd = "pass show mail/client"
//	                            #   (first line of its output), not both
//	tenant = "contoso.onmicrosoft.com"  # microsoft/outlook only: common, organizations,
//	                            #   consumers, a GUID or a domain
//	cloud = "gcc-high"          # microsoft only: global (default), gcc-high, dod, china
//	issuer = "https://…"        # generic: discovery; for presets it only names the issuer
//	auth_url = "…"              # endpoint overrides: auth_url, token_url, device_url,
//	                            #   revoke_url, introspect_url; https, or http on loopback
//	scopes = ["…"]              # replaces the least-privilege scopes
//	imap = "imaps://HOST:993"   # servers, see provider.ParseServer; override the preset's
//	pop3 = "pop3s://HOST:995"
//	smtp = "smtp://HOST:587"
//	protocols = ["imap", "smtp"] # what the account is used for (decides the scopes);
//	                            #   default: the servers the account sets, else all it has
//	ca_file = "ca.pem"          # trust this CA (PEM) for the account's servers
//	flow = "client_credentials" # app-only; "service_account" (Google); default: a person logs in
//	certificate_file = "…"      # with private_key_file: client assertion (RFC 7523)
//	private_key_file = "…"
//	service_account_file = "…"  # Google service account JSON key; email is the mailbox (sub)
//	sasl = "xoauth2"            # or "oauthbearer" (not for microsoft/outlook)
//
// Tables may also be written with dotted keys (accounts.work.email = "…"),
// quoted names ([accounts."me@example.com"]) or inline tables. Relative
// file paths are relative to the configuration file's directory.
package config
