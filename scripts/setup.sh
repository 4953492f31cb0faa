#!/usr/bin/env bash
# Prepare this checkout: system packages (where we can), the virtualenv, our package.
# Usage: scripts/setup.sh run|test
set -euo pipefail

purpose="${1:-run}"
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV=".venv"

say() { printf '==> %s\n' "$*"; }
fail() { printf 'Error: %s\n' "$*" >&2; exit 1; }

have_spatialite() {
    ldconfig -p 2>/dev/null | grep -q 'mod_spatialite' \
        || ls /usr/lib/*/mod_spatialite.so >/dev/null 2>&1
}

postgis_package() {
    # The PostGIS package that matches the installed PostgreSQL server.
    local major
    major="$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)"
    [ -n "$major" ] && echo "postgresql-${major}-postgis-3"
}

have_postgis() {
    local major
    major="$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)"
    [ -n "$major" ] && ls "/usr/share/postgresql/${major}/extension/postgis.control" >/dev/null 2>&1
}

missing_packages() {
    local packages=()
    have_spatialite || packages+=(libsqlite3-mod-spatialite)
    if [ "$purpose" = "test" ]; then
        command -v chromium >/dev/null 2>&1 || packages+=(chromium)
        if [ -d /usr/lib/postgresql ] && ! have_postgis; then
            packages+=("$(postgis_package)")
        fi
    fi
    echo "${packages[@]:-}"
}

install_system_packages() {
    local packages
    packages="$(missing_packages)"
    [ -z "$packages" ] && return 0
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        say "Installing system packages: $packages"
        apt-get update -qq
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        say "Installing system packages with sudo: $packages"
        sudo apt-get update -qq
        # shellcheck disable=SC2086
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
    else
        fail "please install these Debian packages, then run this again: sudo apt-get install $packages"
    fi
}

create_virtualenv() {
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || fail "Python 3.11 or newer is needed (found $("$PYTHON" --version 2>&1))."
    if [ ! -x "$VENV/bin/python" ]; then
        say "Creating the virtualenv in $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
    if [ ! -f "$stamp" ]; then
        say "Installing Python packages (first run only)"
        "$VENV/bin/pip" install -q --upgrade pip
        "$VENV/bin/pip" install -q -e ".[dev]"
        rm -f "$VENV"/.installed-*
        touch "$stamp"
    fi
}

install_system_packages
create_virtualenv
say "Environment ready."
