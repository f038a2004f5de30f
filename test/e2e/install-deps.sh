#!/usr/bin/env bash
# Install what the e2e stack (test/e2e) and the client tests need, on Debian 12 as root.
# Idempotent: packages already installed are skipped, and apt-get runs only if one is missing.
# Node.js >= 20.18 with npm must come from elsewhere (e.g. NodeSource); this script checks it.
# The provider's npm packages are installed by the test harness itself (npm ci, cached).
set -euo pipefail

PKGS=(
  # the stack
  dovecot-imapd dovecot-pop3d dovecot-submissiond dovecot-lmtpd postfix
  openssl curl python3 ca-certificates
  # systemd-analyze verify checks the units mailkey service install writes
  systemd
  # mail clients driven by later tests
  msmtp mutt neomutt isync fetchmail libsasl2-modules-kdexoauth2 sasl2-bin offlineimap3 getmail6
  aerc git-email libmailtools-perl libauthen-sasl-perl libio-socket-ssl-perl libnet-smtp-ssl-perl procmail tmux
  # promtool checks the sample alerting rules in docs/monitoring
  prometheus
  # mailkey import: mutt_oauth2.py encrypts its token file with gpg; email-oauth2-proxy fixtures
  gnupg python3-cryptography
  # a session bus for the desktop notification test of mailkey serve
  dbus-daemon
  # the browser that the status page's test drives
  chromium
  # shells the completion scripts are tested in, and man to render the manual page
  zsh fish man-db groff-base file
)

# One dpkg-query for all of them: one per package takes seconds on a busy machine. It fails
# when dpkg has never heard of one of them, and still lists the others.
installed=" $({ dpkg-query -W -f='${Package}:${Status}\n' "${PKGS[@]}" 2>/dev/null || true; } |
  sed -n 's/:install ok installed$//p' | tr '\n' ' ') "
missing=()
for p in "${PKGS[@]}"; do
  [[ $installed == *" $p "* ]] || missing+=("$p")
done

if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages: ${missing[*]} (run as root)" >&2
    exit 1
  fi
  if pgrep -x apt-get >/dev/null || pgrep -x dpkg >/dev/null; then
    echo "install-deps: another apt-get/dpkg is running; waiting for it" >&2
    while pgrep -x apt-get >/dev/null || pgrep -x dpkg >/dev/null; do sleep 2; done
  fi
  # "No configuration": no main.cf is written and nothing listens on port 25; the tests run
  # their own Postfix with a private configuration directory.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

for p in node npm; do
  command -v "$p" >/dev/null || { echo "install-deps: $p not found: install Node.js >= 20.18 with npm" >&2; exit 1; }
done
node -e '
  const [maj, min] = process.versions.node.split(".").map(Number);
  if (maj < 20 || (maj === 20 && min < 18)) {
    console.error(`install-deps: Node.js ${process.versions.node} is too old: need >= 20.18`);
    process.exit(1);
  }'
echo "install-deps: ok"
