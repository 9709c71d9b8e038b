#!/usr/bin/env bash
# Create a serve-only virtual environment: the runtime (vnegov[server]) and nothing else: no test
# tools, no pip or setuptools once installed, no precompiled bytecode for modules never imported.
#
#   scripts/serve_env.sh DIR                 # this checkout, editable: -e ".[server]"
#   scripts/serve_env.sh DIR 'dist/vnegov-0.1.0-py3-none-any.whl[server]'
#
# scripts/dev.sh serve uses it (DIR = .venv-serve); tests/test_packaging.py installs the wheel
# with it. Versions come from requirements/constraints.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir=$1
shift
python=${PYTHON:-python3}
rm -rf "$dir"
"$python" -m venv "$dir"
if [ $# -eq 0 ]; then set -- -e "$root[server]"; fi
"$dir/bin/python" -m pip install -q --no-compile --disable-pip-version-check \
  -c "$root/requirements/constraints.txt" "$@"
# Installation tools are not the runtime: recreated with the environment when needed.
"$dir/bin/python" -m pip uninstall -q -y --disable-pip-version-check setuptools pip
echo "serve-only environment in $dir: $(du -sm "$dir" | cut -f1) MB"
