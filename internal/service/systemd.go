package service

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SystemUnitDir is where system units written by an administrator go.
const SystemUnitDir = "/etc/systemd/system"

// UserUnitDir is where a user's own units go: $XDG_CONFIG_HOME/systemd/user,
// else ~/.config/systemd/user (systemd.unit(5)).
func UserUnitDir(home string) string {
	if x := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "systemd", "user")
	}
	return filepath.Join(home, ".config", "systemd", "user")
}

// SystemdName is the unit name of a program.
func SystemdName(p Program) string {
	if p == Agent {
		return "mailkey-agent.service"
	}
	return "mailkey.service"
}

// SystemdPlan is s as a systemd unit in dir (UserUnitDir or SystemUnitDir).
func SystemdPlan(s Spec, dir string) (*Plan, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	name := SystemdName(s.Program)
	ctl := []string{"systemctl", "--user"}
	if s.System {
		ctl = []string{"systemctl"}
	}
	c := func(args ...string) Command { return Command{Args: append(append([]string{}, ctl...), args...)} }
	optional := func(c Command) Command { c.Optional = true; return c }
	return &Plan{
		Kind:        Systemd,
		Name:        name,
		File:        filepath.Join(dir, name),
		Content:     SystemdUnit(s),
		Load:        []Command{c("daemon-reload"), c("enable", "--now", name)},
		Reload:      []Command{c("daemon-reload"), c("enable", name), c("restart", name)},
		Unload:      []Command{optional(c("disable", "--now", name))},
		AfterRemove: []Command{c("daemon-reload")},
		Status:      c("is-active", name),
	}, nil
}

// SystemdUnit is the unit file of s. It is Type=notify (mailkey says READY=1
// once it serves), restarts on failure, and is hardened as far as its kind
// allows: a user manager cannot set up mount namespaces without
// unprivileged user namespaces, so a user unit keeps to the seccomp-based
// options, while a system unit also gets a read-only system and home with
// the state folder writable.
func SystemdUnit(s Spec) []byte {
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	name := SystemdName(s.Program)
	short := strings.TrimSuffix(name, ".service")
	scope := "--user "
	if s.System {
		scope = ""
	}
	w("# mailkey %s as a systemd %s, written by mailkey service install.", s.Program.Name(), map[bool]string{false: "user unit", true: "system unit"}[s.System])
	w("# mailkey service status shows it; mailkey service uninstall removes it.")
	w("#")
	w("#   systemctl %sstatus %s", scope, short)
	w("#   journalctl %s-u %s -f", scope, short)
	w("#")
	if !s.System {
		w("# To keep it running while you are logged out: loginctl enable-linger $USER")
	}
	w("# A token store protected by a passphrase needs MAILKEY_PASSPHRASE: put")
	w("# MAILKEY_PASSPHRASE=... in %s (mode 0600).", envFile(s))
	w("")
	w("[Unit]")
	if s.Program == Agent {
		w("Description=mailkey token agent (answers mailkey token)")
		w("Documentation=https://github.com/mailkey/mailkey/blob/main/docs/reliability.md#the-token-agent")
	} else {
		w("Description=mailkey local IMAP/POP3/SMTP OAuth proxy")
		w("Documentation=https://github.com/mailkey/mailkey/blob/main/docs/service.md")
	}
	w("After=network-online.target")
	w("Wants=network-online.target")
	w("")
	w("[Service]")
	w("Type=notify")
	w("NotifyAccess=main")
	w("ExecStart=%s %s --log-format json", execQuote(s.Executable), s.Program.Name())
	for _, kv := range s.env() {
		w("Environment=%s", pathQuote(kv[0]+"="+kv[1]))
	}
	if s.System {
		// A system service has no session keyring to ask.
		w("Environment=MAILKEY_NO_KEYRING=1")
	}
	w("EnvironmentFile=-%s", specifierQuote(envFile(s)))
	if s.System {
		w("User=%s", s.User)
	}
	w("Restart=on-failure")
	w("RestartSec=5")
	w("# On SIGTERM mailkey stops accepting, lets sessions finish (serve's")
	w("# --shutdown-timeout, 10s) and waits up to 3 minutes for a token refresh")
	w("# already sent, so that the provider's new refresh token is saved.")
	w("TimeoutStopSec=200")
	w("KillSignal=SIGTERM")
	w("UMask=0077")
	w("NoNewPrivileges=yes")
	w("LockPersonality=yes")
	w("MemoryDenyWriteExecute=yes")
	w("RestrictRealtime=yes")
	w("RestrictSUIDSGID=yes")
	w("RestrictNamespaces=yes")
	w("SystemCallArchitectures=native")
	w("SystemCallFilter=@system-service")
	// A call outside the filter fails (Go falls back) instead of killing mailkey.
	w("SystemCallErrorNumber=EPERM")
	w("RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX")
	if s.System {
		w("ProtectSystem=strict")
		w("ProtectHome=read-only")
		w("ReadWritePaths=%s", pathQuote(s.StateDir))
		w("PrivateTmp=yes")
		w("PrivateDevices=yes")
		w("ProtectKernelTunables=yes")
		w("ProtectKernelModules=yes")
		w("ProtectKernelLogs=yes")
		w("ProtectControlGroups=yes")
		w("ProtectClock=yes")
		w("ProtectHostname=yes")
		w("CapabilityBoundingSet=")
	}
	w("")
	w("[Install]")
	if s.System {
		w("WantedBy=multi-user.target")
	} else {
		w("WantedBy=default.target")
	}
	return b.Bytes()
}

// envFile is the optional file of extra variables (MAILKEY_PASSPHRASE),
// beside the configuration file.
func envFile(s Spec) string {
	return filepath.Join(filepath.Dir(s.Config), "service.env")
}

// specifierQuote escapes systemd's specifiers (%h, %u…).
func specifierQuote(v string) string { return strings.ReplaceAll(v, "%", "%%") }

// pathQuote quotes one Environment= assignment, or one word of a list such
// as ReadWritePaths=: specifiers
// escaped, and double quotes (with backslash escapes) when it holds
// anything a bare word cannot.
func pathQuote(w string) string {
	w = specifierQuote(w)
	if !strings.ContainsAny(w, " \t\"'\\;") {
		return w
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(w) + `"`
}

// execQuote quotes one word of ExecStart=, where $ also starts a variable.
func execQuote(w string) string { return pathQuote(strings.ReplaceAll(w, "$", "$$")) }
