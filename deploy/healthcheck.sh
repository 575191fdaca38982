#!/usr/bin/env bash
# keryu-healthcheck PATH: GET PATH (default /healthz) from the Keryu process in this container
# and exit 0 only on HTTP 200, printing the answer's body (the JSON details of /readyz).
#
# For container healthchecks (docker compose) where no curl or wget is installed: it needs only
# bash's /dev/tcp and coreutils' timeout. The port comes from KERYU_HTTP_ADDR, like the server's.
set -uo pipefail

path=${1:-/healthz}
addr=${KERYU_HTTP_ADDR:-127.0.0.1:8080}
port=${addr##*:}
host=${addr%:*}
case "$host" in
  0.0.0.0 | '[::]' | '') host=127.0.0.1 ;;
  '['*']') host=${host#[}; host=${host%]} ;;
esac

# shellcheck disable=SC2016 # expanded by the inner bash, from its arguments
answer=$(timeout 3 bash -c '
  exec 3<>"/dev/tcp/$1/$2" || exit 1
  printf "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: keryu-healthcheck\r\nConnection: close\r\n\r\n" "$3" "$1" >&3
  cat <&3
' _ "$host" "$port" "$path" 2>/dev/null) || { echo "keryu-healthcheck: no answer from $host:$port$path" >&2; exit 1; }

status_line=${answer%%$'\r'*}
printf '%s\n' "${answer#*$'\r\n\r\n'}"
case "$status_line" in
  'HTTP/1.'[01]' 200 '*) exit 0 ;;
  *) echo "keryu-healthcheck: $path answered: $status_line" >&2; exit 1 ;;
esac
