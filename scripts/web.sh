#!/usr/bin/env bash
# Set up (if needed) and serve the web tier (Django admin + operator HTTP API) on embedded defaults:
# SQLite, DEBUG on, static files straight from the packages (no collectstatic), a development admin.
# Extra arguments go to uvicorn (e.g. --port 8001). WEB_SETUP=off skips the set-up (scripts/dev.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
export CRYPTO_OPERATOR_TOKENS="${CRYPTO_OPERATOR_TOKENS:-dev-operator-token}"
export DJANGO_DEBUG="${DJANGO_DEBUG:-on}"
# The public development SECRET_KEY is refused unless DEBUG or this flag is on; this is development.
export DJANGO_ALLOW_DEV_SECRET_KEY="${DJANGO_ALLOW_DEV_SECRET_KEY:-on}"
HOST="${WEB_HOST:-127.0.0.1}"
PORT="${WEB_PORT:-8000}"
if [ "${WEB_SETUP:-on}" != "off" ]; then
  bash scripts/bootstrap.sh
  "$PY" -W ignore manage.py migrate --noinput -v 0
  read -r ADMIN_EMAIL ADMIN_PASSWORD < <("$PY" -W ignore scripts/dev_admin.py | tail -n 1)
  cat <<INFO

crypto-grpc web tier on http://$HOST:$PORT/admin/ (SQLite, DEBUG ${DJANGO_DEBUG})
  log in:          $ADMIN_EMAIL / $ADMIN_PASSWORD   (a new password on every start)
  HTTP API:        curl -H 'Authorization: Bearer ${CRYPTO_OPERATOR_TOKENS%%,*}' http://$HOST:$PORT/api/crypto/clients/
  commands go to:  ${CRYPTO_GRPC_TARGET:-localhost:50051} (bash scripts/dev.sh serves a replica there, and this)

INFO
fi
exec "$PY" -W ignore -m uvicorn config.asgi:application --host "$HOST" --port "$PORT" --lifespan off "$@"
