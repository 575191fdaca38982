#!/usr/bin/env bash
# Installs (when missing) and starts the services Keryu needs on a Debian machine, on loopback:
# PostgreSQL on 127.0.0.1:5432 and NATS with JetStream on 127.0.0.1:4222. Safe to run again:
# whatever is already installed or running is left as it is.
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    log "installing or starting system services needs root; run: sudo $0"
    exit 1
  fi
}

apt_updated=no
install_package() {
  need_root
  if [ "$apt_updated" = no ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=yes
  fi
  log "installing $1"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

wait_for() { # name, attempts, command...
  local name=$1 attempts=$2
  shift 2
  for _ in $(seq "$attempts"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "$name did not come up"
  return 1
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
nats_up() { bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222' ; }

# PostgreSQL -----------------------------------------------------------------------------------
if ! pg_up 2>/dev/null; then
  command -v pg_ctlcluster >/dev/null || install_package postgresql
  need_root
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  # Tests and local runs connect over TCP as `postgres` without a password.
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    log "allowing trusted loopback connections in $hba"
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for PostgreSQL 60 pg_up
fi

# The database Keryu and its tests use by default (tests create their own databases beside it).
if ! psql -h 127.0.0.1 -U postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = 'keryu'" | grep -q 1; then
  log "creating database keryu"
  psql -h 127.0.0.1 -U postgres -qc 'CREATE DATABASE keryu' >/dev/null
fi

# NATS with JetStream --------------------------------------------------------------------------
if ! nats_up 2>/dev/null; then
  [ -x /usr/sbin/nats-server ] || install_package nats-server
  need_root
  mkdir -p /var/lib/nats-server
  log "starting nats-server with JetStream"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_for NATS 60 nats_up
fi

log "PostgreSQL on 127.0.0.1:5432 and NATS (JetStream) on 127.0.0.1:4222 are up"
