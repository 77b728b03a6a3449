#!/usr/bin/env bash
# Set up (if needed) and run one replica on embedded defaults: SQLite, in-process Redis stand-in.
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
"$PY" -W ignore manage.py migrate --noinput -v 0
BOT_ID="${DEV_BOT_ID:-dev-bot}"
KEY="$("$PY" -W ignore manage.py create_client_key "$BOT_ID" | head -n 1)"
TOKEN="${CRYPTO_OPERATOR_TOKENS%%,*}"
cat <<INFO

crypto-grpc replica on localhost:$PORT (SQLite, in-process Redis stand-in, auth ${CRYPTO_AUTH:-on})
  connect a bot:   .venv/bin/python -m apps.crypto.grpc.examples.simple_client_test --target localhost:$PORT --client-id $BOT_ID --api-key $KEY
  send a command:  DJANGO_ALLOW_DEV_SECRET_KEY=on CRYPTO_OPERATOR_TOKENS=$TOKEN .venv/bin/python manage.py send_command $BOT_ID ping --wait
  (the key for $BOT_ID is new on every start; earlier keys stay valid)

INFO
exec "$PY" -W ignore manage.py rungrpc --port "$PORT"
