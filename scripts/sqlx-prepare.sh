#!/usr/bin/env bash
# Regenerates .sqlx/, the query metadata that lets the sqlx macros compile without a
# database. Run after changing a query or a migration, and commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
db=offndat_sqlx_prepare_$$
psql "$PGURL/postgres" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
for migration in migrations/*.sql; do
  psql "$PGURL/$db" -q -v ON_ERROR_STOP=1 -f "$migration"
done
rm -rf .sqlx && mkdir .sqlx
# Touching the sources makes cargo re-expand every query macro.
find crates -name '*.rs' -path '*/src/*' -exec touch {} +
SQLX_OFFLINE=false DATABASE_URL="$PGURL/$db" SQLX_OFFLINE_DIR="$PWD/.sqlx" \
  cargo check --workspace --all-targets --quiet
psql "$PGURL/postgres" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
echo "wrote $(ls .sqlx | wc -l) query files to .sqlx/"
