#!/usr/bin/env bash
# Sets up and builds Halo (scripts/setup.sh), then runs the main job.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/setup.sh"
bin=${BUILD_DIR:-$here/build}
exec "$bin/examples/demo/halo-demo" "$@"
