#!/usr/bin/env bash
# Validates the deploy artefacts (Dockerfile, compose, Kubernetes, env files, the operations
# guide) against each other and against the code, offline: see deploy/lint.py for every check.
# Exits non-zero, naming each problem, when one fails. Needs Python 3 with PyYAML: Debian's
# python3-yaml, or PyYAML installed with pip when neither interpreter has it.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'deploy lint: %s\n' "$*" >&2; }

python_with_yaml() {
  local candidate
  for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import yaml' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

if ! python=$(python_with_yaml); then
  log "no Python with PyYAML; installing it with pip"
  python3 -m pip install --quiet pyyaml >&2 || true
  if ! python=$(python_with_yaml); then
    log "cannot import yaml: install Debian's python3-yaml or run: python3 -m pip install pyyaml"
    exit 2
  fi
fi

exec "$python" deploy/lint.py
