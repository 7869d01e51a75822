#!/usr/bin/env bash
# Runs one Python unittest file with Debian's interpreter (python3-numpy).
set -euo pipefail
exec /usr/bin/python3 "$1"
