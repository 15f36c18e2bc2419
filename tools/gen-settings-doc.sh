#!/usr/bin/env bash
# gen-settings-doc.sh: regenerates docs/settings.md from the settings table
# (src/config/settings.def) through the built binary's hidden
# --print-settings-markdown option. tests/integration/test_config.py fails when the
# committed file differs from what the binary prints.
#
#   tools/gen-settings-doc.sh [path/to/gunicorn-c]     (default: build/gunicorn-c)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/gunicorn-c}
if [ ! -x "$bin" ]; then
    echo "gen-settings-doc.sh: $bin not found; build first (cmake -B build && cmake --build build)" >&2
    exit 1
fi
# The defaults printed must not depend on this shell's environment.
env -u PORT -u WEB_CONCURRENCY -u FORWARDED_ALLOW_IPS -u GUNICORN_CMD_ARGS \
    "$bin" --print-settings-markdown > docs/settings.md.tmp
mv docs/settings.md.tmp docs/settings.md
echo "gen-settings-doc.sh: wrote docs/settings.md" >&2
