#!/usr/bin/env bash
# Set up (if needed) and run one replica on embedded defaults (SQLite, in-process Redis stand-in) and the
# web tier beside it (admin and HTTP API on localhost:8000, scripts/web.sh). DEV_WEB=off: the replica only.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
PY="$ROOT/.venv/bin/python"
export CRYPTO_OPERATOR_TOKENS="${CRYPTO_OPERATOR_TOKENS:-dev-operator-token}"
export DJANGO_DEBUG="${DJANGO_DEBUG:-on}"
# The public development SECRET_KEY is refused unless DEBUG or this flag is on; this is development.
export DJANGO_ALLOW_DEV_SECRET_KEY="${DJANGO_ALLOW_DEV_SECRET_KEY:-on}"
PORT="${GRPC_PORT:-50051}"
WEB="${DEV_WEB:-on}"
WEB_ADDRESS="${WEB_HOST:-127.0.0.1}:${WEB_PORT:-8000}"
"$PY" -W ignore manage.py migrate --noinput -v 0
BOT_ID="${DEV_BOT_ID:-dev-bot}"
# The whole output, then its first line: `| head -n 1` closed the pipe under the command's second line
# (BrokenPipeError, and set -o pipefail ended the script now and then).
KEY="$("$PY" -W ignore manage.py create_client_key "$BOT_ID")"
KEY="${KEY%%$'\n'*}"
TOKEN="${CRYPTO_OPERATOR_TOKENS%%,*}"
cat <<INFO

crypto-grpc replica on localhost:$PORT (SQLite, in-process Redis stand-in, auth ${CRYPTO_AUTH:-on})
  connect a bot:   .venv/bin/python -m apps.crypto.grpc.examples.simple_client_test --target localhost:$PORT --client-id $BOT_ID --api-key $KEY
  send a command:  DJANGO_ALLOW_DEV_SECRET_KEY=on CRYPTO_OPERATOR_TOKENS=$TOKEN .venv/bin/python manage.py send_command $BOT_ID ping --wait
  (the key for $BOT_ID is new on every start; earlier keys stay valid)
INFO
if [ "$WEB" = "off" ]; then
  echo
  exec "$PY" -W ignore manage.py rungrpc --port "$PORT"
fi
read -r ADMIN_EMAIL ADMIN_PASSWORD < <("$PY" -W ignore scripts/dev_admin.py | tail -n 1)
cat <<INFO

web tier on http://$WEB_ADDRESS/admin/ (DEBUG $DJANGO_DEBUG; live state shows "unknown": the stand-in Redis lives in the replica)
  log in:          $ADMIN_EMAIL / $ADMIN_PASSWORD   (a new password on every start)
  HTTP API:        curl -H 'Authorization: Bearer $TOKEN' http://$WEB_ADDRESS/api/crypto/clients/

INFO
export CRYPTO_GRPC_TARGET="${CRYPTO_GRPC_TARGET:-localhost:$PORT}"
"$PY" -W ignore manage.py rungrpc --port "$PORT" &
GRPC_PID=$!
WEB_SETUP=off bash scripts/web.sh &
WEB_PID=$!
# Ctrl-C or SIGTERM stops both (the replica drains); either one ending stops the other.
trap 'kill -TERM "$GRPC_PID" "$WEB_PID" 2>/dev/null || true' INT TERM
set +e
wait -n "$GRPC_PID" "$WEB_PID"
STATUS=$?
kill -TERM "$GRPC_PID" "$WEB_PID" 2>/dev/null
wait "$GRPC_PID" "$WEB_PID"
exit "$STATUS"
