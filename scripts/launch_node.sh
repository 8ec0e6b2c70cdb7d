#!/usr/bin/env bash
# Start this machine's agents: one per GPU (`swarm launch --agents N`), or one CPU agent when the
# machine has no NVIDIA GPU. Agents need only the board's Redis URL (with its password):
#
#   SWARM_REDIS_URL=redis://:PASSWORD@board-host:6379/0 scripts/launch_node.sh --proposer classical
#
# Environment:
#   SWARM_REDIS_URL   required; the board (redis:// or rediss:// for TLS)
#   SWARM_NAME        which swarm on that server (default: "default")
#   SWARM_GPUS        agents to start; default: the GPUs `nvidia-smi -L` lists (0 means one CPU agent)
#   SWARM_AGENT_ARGS  extra agent options, e.g. "--proposer classical --budget 300" (split on spaces)
#   SWARM_ARENA       arena directory (default: <repo>/arena)
#   SWARM_BIN         the swarm executable (default: <repo>/.venv/bin/swarm, else `swarm` on PATH)
#   SWARM_PREPARE     1 (default) runs `swarm arena prepare` first; it is cached, so re-runs are quick
# Options: anything after the script name is passed to `swarm launch`; `--dry-run` prints the
# commands instead of running them.
#
# Under systemd use scripts/swarm-agent@.service: the script `exec`s the launcher, so SIGTERM from
# `systemctl stop` reaches it and every agent releases its claim and kills its training run.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRY_RUN=0
ARGS=()
for arg in "$@"; do
  if [ "$arg" = "--dry-run" ]; then DRY_RUN=1; else ARGS+=("$arg"); fi
done

if [ -z "${SWARM_REDIS_URL:-}" ]; then
  echo "launch_node: SWARM_REDIS_URL is not set (redis://:PASSWORD@host:6379/0)" >&2
  exit 2
fi
export SWARM_REDIS_URL
export SWARM_NAME="${SWARM_NAME:-default}"

if [ -n "${SWARM_BIN:-}" ]; then
  BIN=$SWARM_BIN
elif [ -x "$REPO/.venv/bin/swarm" ]; then
  BIN="$REPO/.venv/bin/swarm"
else
  BIN=swarm
fi
ARENA=${SWARM_ARENA:-$REPO/arena}

if [ -n "${SWARM_GPUS:-}" ]; then
  GPUS=$SWARM_GPUS
elif command -v nvidia-smi >/dev/null 2>&1; then
  GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
else
  GPUS=0
fi
case "$GPUS" in
  ''|*[!0-9]*) echo "launch_node: SWARM_GPUS must be a number, got '$GPUS'" >&2; exit 2 ;;
esac

# shellcheck disable=SC2206  # SWARM_AGENT_ARGS is a list of words on purpose
EXTRA=(${SWARM_AGENT_ARGS:-})
if [ "$GPUS" -gt 0 ]; then
  PROFILE=gpu
  CMD=("$BIN" launch --agents "$GPUS" --arena "$ARENA" "${EXTRA[@]}" "${ARGS[@]}")
else
  PROFILE=cpu
  # the node's one CPU agent uses every core (later --threads in the arguments win)
  CMD=("$BIN" agent --gpu cpu --threads all --arena "$ARENA" "${EXTRA[@]}" "${ARGS[@]}")
fi
PREP=("$BIN" arena prepare --arena "$ARENA" --profile "$PROFILE")

# the URL may hold a password: log the host part only
echo "launch_node: swarm=$SWARM_NAME board=${SWARM_REDIS_URL##*@} agents=$([ "$GPUS" -gt 0 ] && echo "$GPUS GPU" || echo "1 CPU")" >&2
if [ "$DRY_RUN" = 1 ]; then
  [ "${SWARM_PREPARE:-1}" = 1 ] && echo "${PREP[*]}"
  echo "${CMD[*]}"
  exit 0
fi
if [ "${SWARM_PREPARE:-1}" = 1 ]; then
  "${PREP[@]}"
fi
exec "${CMD[@]}"
