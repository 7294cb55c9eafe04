#!/usr/bin/env bash
# Installs the Debian packages msgsdk needs, plus any package names given as arguments.
# Idempotent: packages already installed are skipped, and when nothing is missing apt is not
# touched at all (no `apt-get update`). Runs as root, or through `sudo -n` otherwise.
#
# Usage: scripts/install-deps.sh [extra-package...]
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  msgsdk_error "dpkg-query and apt-get not found: this script supports Debian 12 (bookworm)" \
    "and its derivatives; install the packages listed in scripts/common.sh by other means"
  exit 1
fi

wanted=("${MSGSDK_PACKAGES[@]}" "$@")

# A package counts as present when dpkg reports it installed ("ii", or "hi" when held) for
# any architecture.
is_installed() {
  dpkg-query -W -f='${db:Status-Abbrev}\n' "$1" 2>/dev/null | grep -q '^[ih]i'
}

missing=()
for package in "${wanted[@]}"; do
  if ! is_installed "${package}"; then
    missing+=("${package}")
  fi
done

if ((${#missing[@]} == 0)); then
  msgsdk_log "install-deps: all ${#wanted[@]} packages already installed"
  exit 0
fi

msgsdk_log "install-deps: ${#missing[@]} of ${#wanted[@]} packages missing: ${missing[*]}"

as_root=()
if ((EUID != 0)); then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    msgsdk_error "installing packages needs root: run this script as root, or allow" \
      "password-less sudo, or install by hand: apt-get install ${missing[*]}"
    exit 1
  fi
fi

# Installing redis-server would otherwise start a Redis on port 6379 on machines with a
# service manager; nothing here needs it (the tests start their own servers on free ports).
# Docker images already ship such a policy, which is left as it is.
policy=/usr/sbin/policy-rc.d
if [[ ! -e "${policy}" ]]; then
  "${as_root[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > '${policy}' && chmod 755 '${policy}'"
  trap '"${as_root[@]}" rm -f "${policy}"' EXIT
fi

apt_options=(-o DPkg::Lock::Timeout=600 -o Dpkg::Use-Pty=0 -o Acquire::Retries=3)

# Mirrors occasionally fail mid-update; a retry is cheaper than a failed CI run.
attempt=1
until "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_options[@]}" -q update; do
  if ((attempt >= 3)); then
    msgsdk_error "apt-get update failed ${attempt} times"
    exit 1
  fi
  attempt=$((attempt + 1))
  msgsdk_log "install-deps: apt-get update failed, retrying (attempt ${attempt} of 3)"
  sleep 5
done

"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_options[@]}" -q install -y \
  --no-install-recommends "${missing[@]}"

still_missing=()
for package in "${missing[@]}"; do
  if ! is_installed "${package}"; then
    still_missing+=("${package}")
  fi
done
if ((${#still_missing[@]} > 0)); then
  msgsdk_error "packages still not installed after apt-get install: ${still_missing[*]}"
  exit 1
fi
msgsdk_log "install-deps: installed ${missing[*]}"
