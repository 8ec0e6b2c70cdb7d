#!/bin/sh
# Entry point of the agent image: builds SWARM_REDIS_URL from REDIS_PASSWORD when no URL is given
# (so the password lives in one env file), optionally prepares the arena data, then runs `swarm`;
# for `agent` and `launch` it appends SWARM_AGENT_ARGS.
#   REDIS_HOST (default redis), REDIS_PORT (default 6379), REDIS_DB (default 0)
#   SWARM_ARENA  the arena directory (the image sets /opt/swarm/arena)
#   SWARM_PREPARE_PROFILE=cpu|gpu  runs `swarm arena prepare --profile ...` first (idempotent, cached in a volume)
set -eu
if [ -z "${SWARM_REDIS_URL:-}" ]; then
  if [ -n "${REDIS_PASSWORD:-}" ]; then
    # percent-encode so any character in the password survives the URL
    pw=$(python -c 'import os, urllib.parse; print(urllib.parse.quote(os.environ["REDIS_PASSWORD"], safe=""))')
    SWARM_REDIS_URL="redis://:${pw}@${REDIS_HOST:-redis}:${REDIS_PORT:-6379}/${REDIS_DB:-0}"
  else
    SWARM_REDIS_URL="redis://${REDIS_HOST:-redis}:${REDIS_PORT:-6379}/${REDIS_DB:-0}"
  fi
  export SWARM_REDIS_URL
fi
if [ -n "${SWARM_PREPARE_PROFILE:-}" ]; then
  swarm arena prepare --arena "${SWARM_ARENA:-/opt/swarm/arena}" --profile "$SWARM_PREPARE_PROFILE"
fi
case "${1:-}" in
  agent|launch)
    # SWARM_AGENT_ARGS holds options such as "--proposer classical --proposer anthropic:claude-sonnet-4-5";
    # left unquoted on purpose so it splits into words (no spaces inside one option value).
    # shellcheck disable=SC2086
    exec swarm "$@" --arena "${SWARM_ARENA:-/opt/swarm/arena}" ${SWARM_AGENT_ARGS:-} ;;
  *)
    exec swarm "$@" ;;
esac
