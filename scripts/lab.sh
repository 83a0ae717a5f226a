#!/usr/bin/env bash
# Start JupyterLab on cryptolab's notebooks, ready to use: `make lab` runs it.
#
# Usage: scripts/lab.sh [extra jupyter lab options...]
#
#   JUPYTER=<path>   the jupyter command (default: .venv/bin/jupyter when present, else jupyter)
#   LAB_ROOT_DIR=<dir>  the folder JupyterLab serves (default: notebooks/)
#
# Passes --allow-root when run as root (containers, CI machines: JupyterLab refuses root
# otherwise), serves notebooks/ on 127.0.0.1, and turns JupyterLab's news and update
# checks off (they reach the internet). Later options override earlier ones.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jupyter="${JUPYTER:-}"
if [[ -z "$jupyter" ]]; then
  if [[ -x "$ROOT/.venv/bin/jupyter" ]]; then jupyter="$ROOT/.venv/bin/jupyter"; else jupyter=jupyter; fi
fi
args=(lab --ServerApp.root_dir="${LAB_ROOT_DIR:-$ROOT/notebooks}" --ServerApp.ip=127.0.0.1
      --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate)
if [[ "$(id -u)" == 0 ]]; then
  args+=(--allow-root)
fi
exec "$jupyter" "${args[@]}" "$@"
