#!/usr/bin/env bash
# Set up a development machine (Debian 12, Python >= 3.11) and serve or test.
#
#   scripts/dev.sh serve   install what is missing, create ./data on first run, start the server
#   scripts/dev.sh test    install what is missing, then run the whole test suite
#
# Installs, only when missing: Debian packages (apt-get, through sudo when not root); for serve,
# the runtime alone in .venv-serve (scripts/serve_env.sh: vnegov[server], no test tools); for
# test, a virtual environment in .venv with the project and its test extra, and the npm
# packages the tests use.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# What the server needs at run time (serve installs only these).
APT_RUNTIME=(python3-venv openssl softhsm2 fonts-dejavu-core fonts-liberation fonts-liberation2)
# And what the tests use (haproxy: the production front door's tests).
APT_PACKAGES=("${APT_RUNTIME[@]}" python3-dev build-essential opensc haproxy
              poppler-utils xmlsec1 qpdf libnss3-tools nghttp2-client chromium
              # The API contract: Debian's protoc and the Java client built without Maven.
              protobuf-compiler libprotobuf-dev openjdk-17-jdk-headless libgrpc-java
              protobuf-compiler-grpc-java-plugin libprotobuf-java libnetty-java libperfmark-java
              libguava-java libgeronimo-annotation-1.3-spec-java
              # benchmarks/server_grpc.py's load generator, on gRPC's C core.
              libgrpc++-dev pkg-config)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

install_debian_packages() {  # [runtime]: only what serving needs
  local missing=() wanted=("${APT_PACKAGES[@]}")
  [ "${1:-}" = runtime ] && wanted=("${APT_RUNTIME[@]}")
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  if [ "${1:-}" != runtime ]; then
    # Node.js may come from elsewhere (NodeSource ships npm inside nodejs): ask for the commands.
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
}

python_bin() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c \
        'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "Python 3.11 or newer is required" >&2; exit 1
}

install_python_packages() {
  local stamp=.venv/.vnegov-installed
  local want
  want=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -d' ' -f1)
  if [ ! -x .venv/bin/python ]; then
    say "creating the virtual environment in .venv"
    "$(python_bin)" -m venv .venv
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing Python packages"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[test]"
    echo "$want" > "$stamp"
  fi
}

install_tools() {
  # Scanners with dependencies that clash with the project's, each in its own environment.
  local dir=.venv-tools/sslyze
  local stamp="$dir/.vnegov-installed"
  local want
  want=$(sha256sum requirements/sslyze.txt | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing sslyze in $dir"
    [ -x "$dir/bin/python" ] || "$(python_bin)" -m venv "$dir"
    "$dir/bin/python" -m pip install -q -r requirements/sslyze.txt
    echo "$want" > "$stamp"
  fi
}

install_npm_packages() {
  # tests/interop/node: the peers the interoperability tests use; tools/buf: the buf CLI.
  local dir stamp want
  for dir in tests/interop/node tools/buf; do
    [ -f "$dir/package.json" ] || continue
    stamp="$dir/node_modules/.vnegov-installed"
    want=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
      say "installing npm packages in $dir"
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
      echo "$want" > "$stamp"
    fi
  done
}

install_serve_packages() {
  local stamp=.venv-serve/.vnegov-installed
  local want
  want=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing the runtime in .venv-serve"
    PYTHON="$(python_bin)" scripts/serve_env.sh .venv-serve
    echo "$want" > "$stamp"
  fi
}

setup() {
  install_debian_packages
  install_python_packages
  install_tools
  install_npm_packages
}

case "${1:-}" in
  serve)
    install_debian_packages runtime
    install_serve_packages
    if [ ! -f data/vnegov.toml ]; then
      say "creating ./data (configuration, SQLite database, development PKI, SoftHSM2 token)"
      .venv-serve/bin/vnegov --data-dir data init
    fi
    exec .venv-serve/bin/vnegov --data-dir data serve --migrate
    ;;
  test)
    setup
    shift
    say "ruff"
    .venv/bin/ruff check .
    say "mypy"
    .venv/bin/mypy
    say "generated protobuf code"
    .venv/bin/python scripts/gen_proto.py --check
    say "buf lint and breaking-change check"
    tools/buf/node_modules/.bin/buf lint
    tools/buf/node_modules/.bin/buf breaking --against api/v0.1.0.binpb
    say "pytest"
    exec .venv/bin/python -m pytest "$@"
    ;;
  *)
    echo "usage: scripts/dev.sh serve | test [pytest arguments]" >&2
    exit 2
    ;;
esac
