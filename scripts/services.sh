#!/usr/bin/env bash
# Real Kafka, PostgreSQL and Redis for cryptolab's integration tests and local runs.
#
# Usage: scripts/services.sh up|down|status|env
#        scripts/services.sh start|stop kafka|postgres|redis
#
#   up      start the services (idempotent) and wait until each one answers; fails at once,
#           naming the port and its program, when a port is held by anything this script
#           did not start (it never runs on another stack's servers)
#   down    stop the services this script started (idempotent); data is kept
#   start NAME / stop NAME
#           start or stop one service this script manages (fault tests stop and restart
#           them mid-stream); `stop` fails when the service still answers afterwards
#   status  print each service as up/down with its address; exit 1 if any is down
#   env     print `export CRYPTOLAB_...=` lines: eval "$(scripts/services.sh env)"
#
# Where the services come from, per service:
#   1. CRYPTOLAB_KAFKA_BOOTSTRAP / CRYPTOLAB_STORE_URL / CRYPTOLAB_REDIS_URL, when set to
#      anything but this script's own address: an external service, only checked, never
#      started or stopped;
#   2. otherwise `docker compose` (docker-compose.yml) when a Docker engine answers;
#   3. otherwise local servers on 127.0.0.1: Apache Kafka 3.9.1 (KRaft, jars from Maven
#      Central cached in .cache/kafka/libs), PostgreSQL 15 and Redis from Debian's packages
#      (installed with apt-get when missing). State, logs and pid files go to .services/.
#
# Script-only settings (deliberately not CRYPTOLAB_*, which cryptolab's Settings rejects):
#   SERVICES_BACKEND=auto|docker|local    force a backend (default auto)
#   SERVICES_KAFKA_PORT=19092  SERVICES_KAFKA_CONTROLLER_PORT=19093
#   SERVICES_PG_PORT=55432     SERVICES_REDIS_PORT=56379
#   SERVICES_DIR=<repo>/.services         state, logs and pid files
#   SERVICES_WAIT_SECONDS=180             how long `up` waits for each service
#   SERVICES_PG_BIN=/usr/lib/postgresql/15/bin
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly HOST=127.0.0.1
readonly KAFKA_VERSION=3.9.1
readonly KAFKA_PORT="${SERVICES_KAFKA_PORT:-19092}"
readonly KAFKA_CONTROLLER_PORT="${SERVICES_KAFKA_CONTROLLER_PORT:-19093}"
readonly PG_PORT="${SERVICES_PG_PORT:-55432}"
readonly REDIS_PORT="${SERVICES_REDIS_PORT:-56379}"
readonly STATE="${SERVICES_DIR:-$ROOT/.services}"
readonly WAIT_SECONDS="${SERVICES_WAIT_SECONDS:-180}"
readonly PG_BIN="${SERVICES_PG_BIN:-/usr/lib/postgresql/15/bin}"
readonly KAFKA_LIBS="$ROOT/.cache/kafka/libs"
readonly COMPOSE_FILE="$ROOT/docker-compose.yml"
readonly SERVICES=(kafka postgres redis)

# The addresses this script provides (identical for the docker and local backends).
readonly LOCAL_KAFKA="$HOST:$KAFKA_PORT"
readonly LOCAL_STORE="postgresql+psycopg://cryptolab@$HOST:$PG_PORT/cryptolab"
readonly LOCAL_REDIS="redis://$HOST:$REDIS_PORT/0"

log() { printf 'services: %s\n' "$*" >&2; }
die() {
  printf 'services: error: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------- helpers

env_var() { # env_var SERVICE -> name of the CRYPTOLAB_* variable holding its URL
  case "$1" in
    kafka) echo CRYPTOLAB_KAFKA_BOOTSTRAP ;;
    postgres) echo CRYPTOLAB_STORE_URL ;;
    redis) echo CRYPTOLAB_REDIS_URL ;;
  esac
}

local_url() { # local_url SERVICE -> the URL this script provides
  case "$1" in
    kafka) echo "$LOCAL_KAFKA" ;;
    postgres) echo "$LOCAL_STORE" ;;
    redis) echo "$LOCAL_REDIS" ;;
  esac
}

url_of() { # url_of SERVICE -> the URL in effect (external when set, else ours)
  local var
  var="$(env_var "$1")"
  if [[ -n "${!var:-}" ]]; then echo "${!var}"; else local_url "$1"; fi
}

is_external() { # is_external SERVICE: its URL is set and is not the one this script provides
  local var
  var="$(env_var "$1")"
  [[ -n "${!var:-}" && "${!var}" != "$(local_url "$1")" ]]
}

docker_answers() { # a Docker engine answers and the compose plugin is there
  command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 &&
    docker compose version >/dev/null 2>&1
}

detect_backend() { # detect_backend -> docker|local: forced by SERVICES_BACKEND, else detected
  local chosen="${SERVICES_BACKEND:-auto}"
  case "$chosen" in
    docker | local) echo "$chosen" ;;
    auto) if docker_answers; then echo docker; else echo local; fi ;;
    *) die "SERVICES_BACKEND must be auto, docker or local, got '$chosen'" ;;
  esac
}

backend() { # backend -> docker|local: forced, else the one `up` used, else detected
  if [[ -z "${SERVICES_BACKEND:-}" || "${SERVICES_BACKEND}" == auto ]] && [[ -s "$STATE/backend" ]]; then
    cat "$STATE/backend"
  else
    detect_backend
  fi
}

python_bin() { # a python that has the cryptolab dependencies, if any
  if [[ -x "$ROOT/.venv/bin/python" ]]; then
    echo "$ROOT/.venv/bin/python"
  elif command -v python3 >/dev/null 2>&1; then
    command -v python3
  fi
}

tcp_open() { # tcp_open HOST PORT
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

host_port() { # host_port URL DEFAULT_PORT -> "host port" of a URL or host:port list (first entry)
  local rest="${1#*://}"
  rest="${rest%%,*}"
  rest="${rest##*@}"
  rest="${rest%%/*}"
  rest="${rest%%\?*}"
  if [[ "$rest" == *:* ]]; then echo "${rest%:*} ${rest##*:}"; else echo "$rest $2"; fi
}

# probe SERVICE URL: succeeds when the service at URL answers a real request
# (Kafka: metadata with a broker; PostgreSQL: SELECT 1; Redis: PING).
probe() {
  local service="$1" url="$2" py
  py="$(python_bin)"
  if [[ -n "$py" ]] && "$py" - "$service" "$url" 2>/dev/null <<'PY'; then
import sys

service, url = sys.argv[1], sys.argv[2]
if service == "kafka":
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": url, "socket.timeout.ms": 3000, "log_level": 0})
    sys.exit(0 if admin.list_topics(timeout=3).brokers else 1)
elif service == "postgres":
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo, connect_timeout=3) as conn:
        conn.execute("SELECT 1").fetchone()
elif service == "redis":
    import redis

    redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3).ping()
PY
    return 0
  elif [[ -n "$py" ]] && "$py" -c 'import confluent_kafka, psycopg, redis' 2>/dev/null; then
    return 1 # the python client could talk to it and says it does not answer
  fi
  # No python with the clients yet: fall back to the command-line tools, then to TCP.
  local hp host port
  case "$service" in
    kafka) hp="$(host_port "$url" 9092)" ;;
    postgres) hp="$(host_port "$url" 5432)" ;;
    redis) hp="$(host_port "$url" 6379)" ;;
  esac
  host="${hp% *}"
  port="${hp#* }"
  case "$service" in
    postgres)
      if [[ -x "$PG_BIN/pg_isready" ]]; then
        "$PG_BIN/pg_isready" -q -h "$host" -p "$port" -t 3
        return
      fi
      ;;
    redis)
      if command -v redis-cli >/dev/null 2>&1 && [[ "$url" != *@* ]]; then
        [[ "$(redis-cli -h "$host" -p "$port" ping 2>/dev/null)" == PONG ]]
        return
      fi
      ;;
  esac
  tcp_open "$host" "$port"
}

wait_for() { # wait_for SERVICE URL LOGFILE|docker [PID]
  local service="$1" url="$2" logfile="$3" pid="${4:-}" deadline
  deadline=$((SECONDS + WAIT_SECONDS))
  until probe "$service" "$url"; do
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      fail_start "$service" "$url" "$logfile" "its process ($pid) exited"
    fi
    if ((SECONDS >= deadline)); then
      fail_start "$service" "$url" "$logfile" "it did not answer within ${WAIT_SECONDS}s"
    fi
    sleep 1
  done
}

fail_start() { # fail_start SERVICE URL LOGFILE|docker WHY
  local service="$1" url="$2" logfile="$3" why="$4"
  if [[ "$logfile" == docker ]]; then
    printf 'services: error: %s did not come up at %s: %s; last log lines (docker compose logs %s):\n' \
      "$service" "$url" "$why" "$service" >&2
    docker compose -f "$COMPOSE_FILE" logs --no-color --tail 40 "$service" >&2 || true
  else
    printf 'services: error: %s did not come up at %s: %s; log: %s\n' \
      "$service" "$url" "$why" "$logfile" >&2
    if [[ -f "$logfile" ]]; then
      printf -- '----- last lines of %s -----\n' "$logfile" >&2
      tail -n 40 "$logfile" >&2
      printf -- '-----\n' >&2
    fi
  fi
  exit 1
}

as_root() { # run a command as root (directly, or through sudo when available)
  if [[ "$(id -u)" == 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "'$*' needs root and sudo is not available"
  fi
}

apt_install() { # apt_install PACKAGE...: install Debian packages, updating the index if needed
  command -v apt-get >/dev/null 2>&1 ||
    die "cannot install $* (no apt-get): install them with your package manager"
  log "installing Debian packages: $*"
  # Do not let package scripts start system-wide servers on the default ports.
  local policy=/usr/sbin/policy-rc.d made_policy=""
  if [[ ! -e "$policy" ]]; then
    if as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"; then
      made_policy=1
    fi
  fi
  local ok=0
  if as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2; then
    ok=1
  elif as_root apt-get update -q >&2 &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2; then
    ok=1
  fi
  if [[ -n "$made_policy" ]]; then as_root rm -f "$policy"; fi
  ((ok)) || die "apt-get could not install: $*"
}

port_holder() { # port_holder PORT -> "NAME (pid N)" of the program listening on PORT, if it can tell
  local port="$1" line pid inode fd
  if command -v ss >/dev/null 2>&1; then
    line="$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'users:(("[^"]*",pid=[0-9]*' | head -n 1 || true)"
    if [[ -n "$line" ]]; then
      pid="${line##*pid=}"
      line="${line#users:((\"}"
      echo "${line%%\"*} (pid $pid)"
      return 0
    fi
  fi
  if command -v lsof >/dev/null 2>&1; then
    line="$(lsof -nP -iTCP:"$port" -sTCP:LISTEN -Fpc 2>/dev/null | head -n 2 | tr '\n' ' ' || true)"
    if [[ "$line" =~ ^p([0-9]+)\ c([^ ]+) ]]; then
      echo "${BASH_REMATCH[2]} (pid ${BASH_REMATCH[1]})"
      return 0
    fi
  fi
  # No ss or lsof: the listening socket's inode in /proc/net/tcp*, then the process holding it.
  inode="$(awk -v p="$(printf ':%04X' "$port")" '$4 == "0A" && substr($2, length($2) - 4) == p {print $10; exit}' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null || true)"
  if [[ -n "$inode" ]]; then
    for fd in /proc/[0-9]*/fd/*; do
      if [[ "$(readlink "$fd" 2>/dev/null)" == "socket:[$inode]" ]]; then
        pid="${fd#/proc/}"
        pid="${pid%%/*}"
        echo "$(cat "/proc/$pid/comm" 2>/dev/null || echo '?') (pid $pid)"
        return 0
      fi
    done
  fi
  echo "a program this user cannot see"
}

port_var() { # port_var PORT -> the SERVICES_*_PORT variable that sets it
  case "$1" in
    "$KAFKA_PORT") echo SERVICES_KAFKA_PORT ;;
    "$KAFKA_CONTROLLER_PORT") echo SERVICES_KAFKA_CONTROLLER_PORT ;;
    "$PG_PORT") echo SERVICES_PG_PORT ;;
    "$REDIS_PORT") echo SERVICES_REDIS_PORT ;;
  esac
}

# port_free SERVICE PORT: fail at once when anything this script did not start holds the port,
# answering as the service or not: tests must run on servers this script owns (it stops and
# restarts them), and another stack's servers (a second clone, a developer's own) are not.
port_free() {
  if tcp_open "$HOST" "$2"; then
    die "$1: port $2 on $HOST is held by $(port_holder "$2"), which scripts/services.sh did not start" \
      "(from $STATE): stop it, or give $1 another port with $(port_var "$2")=PORT" \
      "(and eval \"\$(scripts/services.sh env)\" with the same setting)"
  fi
}

pidfile_alive() { # pidfile_alive PIDFILE PATTERN: the pid in PIDFILE runs a command matching PATTERN
  local pid
  [[ -f "$1" ]] || return 1
  pid="$(head -n 1 "$1")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

stop_pid() { # stop_pid NAME PIDFILE PATTERN [SECONDS]: TERM, wait, then KILL
  local name="$1" pidfile="$2" pattern="$3" grace="${4:-60}" pid deadline
  if ! pidfile_alive "$pidfile" "$pattern"; then
    rm -f "$pidfile"
    return 0
  fi
  pid="$(head -n 1 "$pidfile")"
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + grace))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "$name did not stop within ${grace}s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.5
  done
  rm -f "$pidfile"
}

# ---------------------------------------------------------------------------- Kafka (local)

kafka_fetch_jars() {
  local stamp="$KAFKA_LIBS/.complete-$KAFKA_VERSION"
  [[ -f "$stamp" ]] && return 0
  command -v java >/dev/null 2>&1 || apt_install default-jre-headless
  command -v mvn >/dev/null 2>&1 || apt_install maven
  log "fetching Apache Kafka $KAFKA_VERSION jars with Maven into ${KAFKA_LIBS#"$ROOT"/}"
  local tmp="$KAFKA_LIBS.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$(dirname "$KAFKA_LIBS")"
  if ! mvn -q -B -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
    "-Dkafka.libs=$tmp" >"$STATE/kafka/mvn.log" 2>&1; then
    rm -rf "$tmp"
    printf 'services: error: kafka: Maven could not fetch the Kafka jars; log: %s\n' \
      "$STATE/kafka/mvn.log" >&2
    tail -n 40 "$STATE/kafka/mvn.log" >&2
    exit 1
  fi
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "kafka: Maven did not produce kafka_2.13-$KAFKA_VERSION.jar"
  touch "$tmp/.complete-$KAFKA_VERSION"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
}

kafka_up_local() {
  local dir="$STATE/kafka" pidfile="$STATE/kafka/kafka.pid" logfile="$STATE/kafka/kafka.log"
  mkdir -p "$dir/data"
  if pidfile_alive "$pidfile" kafka.Kafka; then
    wait_for kafka "$LOCAL_KAFKA" "$logfile" "$(head -n 1 "$pidfile")"
    log "kafka: up at $LOCAL_KAFKA (pid $(head -n 1 "$pidfile"))"
    return 0
  fi
  port_free kafka "$KAFKA_PORT"
  port_free kafka "$KAFKA_CONTROLLER_PORT"
  kafka_fetch_jars
  local java_cmd=(java -Xms128m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j.configuration=file:$ROOT/scripts/kafka/log4j.properties"
    "-Dkafka.logs.dir=$dir" -cp "$KAFKA_LIBS/*")
  sed -e "s|@HOST@|$HOST|g" -e "s|@PORT@|$KAFKA_PORT|g" \
    -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" -e "s|@LOG_DIR@|$dir/data|g" \
    "$ROOT/scripts/kafka/server.properties.in" >"$dir/server.properties"
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    local cluster_id
    if [[ -s "$dir/cluster.id" ]]; then
      cluster_id="$(cat "$dir/cluster.id")"
    else
      cluster_id="$("${java_cmd[@]}" kafka.tools.StorageTool random-uuid 2>>"$logfile" |
        grep -Eo '^[A-Za-z0-9_-]{22}$' | tail -n 1 || true)"
      [[ -n "$cluster_id" ]] || fail_start kafka "$LOCAL_KAFKA" "$logfile" "StorageTool random-uuid failed"
      echo "$cluster_id" >"$dir/cluster.id"
    fi
    log "kafka: formatting storage in ${dir#"$ROOT"/}/data (cluster id $cluster_id)"
    "${java_cmd[@]}" kafka.tools.StorageTool format --ignore-formatted -t "$cluster_id" \
      -c "$dir/server.properties" >>"$logfile" 2>&1 ||
      fail_start kafka "$LOCAL_KAFKA" "$logfile" "StorageTool format failed"
  fi
  log "kafka: starting Apache Kafka $KAFKA_VERSION (KRaft) on $LOCAL_KAFKA"
  printf '\n==== %s starting kafka\n' "$(date -u +%FT%TZ)" >>"$logfile"
  # A pid file left by a broker that did not stop cleanly (a reboot) would be read below
  # before the new broker writes its own, and its dead pid taken for a failed start.
  rm -f "$pidfile"
  # setsid: the broker must outlive the shell (and a Ctrl-C in it) that started it.
  # shellcheck disable=SC2016  # $$ and "$@" are expanded by the inner bash
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidfile" \
    "${java_cmd[@]}" kafka.Kafka "$dir/server.properties" >>"$logfile" 2>&1 </dev/null &
  local _
  for _ in {1..50}; do
    [[ -s "$pidfile" ]] && break
    sleep 0.1
  done
  wait_for kafka "$LOCAL_KAFKA" "$logfile" "$(head -n 1 "$pidfile" 2>/dev/null || true)"
  log "kafka: up at $LOCAL_KAFKA (pid $(head -n 1 "$pidfile"))"
}

kafka_down_local() {
  stop_pid kafka "$STATE/kafka/kafka.pid" kafka.Kafka 60
}

# ---------------------------------------------------------------------------- PostgreSQL (local)

as_postgres() { # run as the postgres OS user when we are root (initdb refuses root)
  if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_dir() { # the PostgreSQL state directory: under $STATE unless the postgres OS user cannot reach it
  if [[ "$(id -u)" == 0 && -d "$STATE" ]] && ! runuser -u postgres -- test -x "$STATE" 2>/dev/null; then
    # The checkout lives where the postgres user cannot go (e.g. under /root).
    echo "/var/tmp/cryptolab-services-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)/postgres"
  else
    echo "$STATE/postgres"
  fi
}

pg_up_local() {
  if [[ ! -x "$PG_BIN/postgres" ]]; then
    apt_install postgresql-15
  fi
  [[ -x "$PG_BIN/postgres" ]] || die "postgres: $PG_BIN/postgres not found (set SERVICES_PG_BIN)"
  if [[ "$(id -u)" == 0 ]] && ! id postgres >/dev/null 2>&1; then
    die "postgres: the 'postgres' OS user is missing (install postgresql-15)"
  fi
  local dir data logfile
  mkdir -p "$STATE"
  dir="$(pg_dir)"
  data="$dir/data"
  logfile="$dir/postgres.log"
  mkdir -p "$dir"
  if [[ "$(id -u)" == 0 ]]; then chown postgres: "$dir"; fi
  if [[ "$dir" != "$STATE/postgres" ]]; then
    log "postgres: ${STATE} is not reachable by the postgres user; data in $dir"
  fi
  if pidfile_alive "$data/postmaster.pid" postgres; then
    wait_for postgres "$LOCAL_STORE" "$logfile"
    log "postgres: up at $LOCAL_STORE"
    return 0
  fi
  port_free postgres "$PG_PORT"
  if [[ ! -f "$data/PG_VERSION" ]]; then
    log "postgres: initdb in $data"
    rm -rf "$data"
    as_postgres "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
      >"$dir/initdb.log" 2>&1 || fail_start postgres "$LOCAL_STORE" "$dir/initdb.log" "initdb failed"
    echo "include_if_exists = 'cryptolab.conf'" | as_postgres tee -a "$data/postgresql.conf" >/dev/null
  fi
  mkdir -p "$dir/run"
  [[ "$(id -u)" == 0 ]] && chown postgres: "$dir/run"
  local preload=""
  if [[ -f "$PG_BIN/../lib/timescaledb.so" ]]; then preload="timescaledb"; fi
  as_postgres tee "$data/cryptolab.conf" >/dev/null <<EOF
# Written by scripts/services.sh on every start: a throw-away test server.
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$dir/run'
max_connections = 200
shared_preload_libraries = '$preload'
fsync = off
full_page_writes = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  log "postgres: starting PostgreSQL $("$PG_BIN/postgres" -V | awk '{print $3}') on $HOST:$PG_PORT"
  printf '\n==== %s starting postgres\n' "$(date -u +%FT%TZ)" | as_postgres tee -a "$logfile" >/dev/null
  if ! as_postgres setsid "$PG_BIN/pg_ctl" -D "$data" -l "$logfile" -w -t "$WAIT_SECONDS" start \
    >>"$dir/pg_ctl.log" 2>&1; then
    fail_start postgres "$LOCAL_STORE" "$logfile" "pg_ctl start failed (see also $dir/pg_ctl.log)"
  fi
  local admin=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -tA)
  local deadline=$((SECONDS + WAIT_SECONDS))
  until "${admin[@]}" -c 'SELECT 1' >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail_start postgres "$LOCAL_STORE" "$logfile" "it did not accept connections"
    sleep 0.5
  done
  if [[ "$("${admin[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = 'cryptolab'")" != 1 ]]; then
    "${admin[@]}" -c 'CREATE ROLE cryptolab LOGIN SUPERUSER' >/dev/null
  fi
  if [[ "$("${admin[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'cryptolab'")" != 1 ]]; then
    "${admin[@]}" -c 'CREATE DATABASE cryptolab OWNER cryptolab' >/dev/null
  fi
  wait_for postgres "$LOCAL_STORE" "$logfile"
  log "postgres: up at $LOCAL_STORE${preload:+ (with TimescaleDB)}"
}

pg_down_local() {
  local dir data
  dir="$(pg_dir)"
  data="$dir/data"
  if pidfile_alive "$data/postmaster.pid" postgres; then
    log "stopping postgres"
    as_postgres "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >>"$dir/pg_ctl.log" 2>&1 ||
      die "postgres did not stop; log: $dir/pg_ctl.log"
  fi
}

# ---------------------------------------------------------------------------- Redis (local)

redis_up_local() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  local dir="$STATE/redis" pidfile="$STATE/redis/redis.pid" logfile="$STATE/redis/redis.log"
  mkdir -p "$dir"
  if pidfile_alive "$pidfile" redis-server; then
    wait_for redis "$LOCAL_REDIS" "$logfile"
    log "redis: up at $LOCAL_REDIS (pid $(head -n 1 "$pidfile"))"
    return 0
  fi
  port_free redis "$REDIS_PORT"
  log "redis: starting $(redis-server --version | awk '{print $1, $3}') on $HOST:$REDIS_PORT"
  rm -f "$pidfile" # left by a server that did not stop cleanly
  # shellcheck disable=SC2094  # fail_start reads the log only after redis-server exited
  setsid redis-server --bind "$HOST" --port "$REDIS_PORT" --daemonize yes \
    --pidfile "$pidfile" --logfile "$logfile" --dir "$dir" \
    --save '' --appendonly no --databases 16 </dev/null >>"$logfile" 2>&1 ||
    fail_start redis "$LOCAL_REDIS" "$logfile" "redis-server failed to start"
  wait_for redis "$LOCAL_REDIS" "$logfile"
  log "redis: up at $LOCAL_REDIS (pid $(head -n 1 "$pidfile" 2>/dev/null || echo '?'))"
}

redis_down_local() {
  stop_pid redis "$STATE/redis/redis.pid" redis-server 30
}

# ---------------------------------------------------------------------------- docker compose

docker_up() { # docker_up SERVICE...
  log "starting with docker compose: $*"
  docker compose -f "$COMPOSE_FILE" up -d "$@" >&2 ||
    die "docker compose -f $COMPOSE_FILE up -d $* failed (see its output above)"
  local s
  for s in "$@"; do
    wait_for "$s" "$(local_url "$s")" docker
    log "$s: up at $(local_url "$s") (docker compose)"
  done
}

docker_down() { # docker_down SERVICE...
  log "stopping with docker compose: $*"
  docker compose -f "$COMPOSE_FILE" stop "$@" >&2
}

# ---------------------------------------------------------------------------- commands

cmd_up() {
  mkdir -p "$STATE/kafka" "$STATE/redis"
  local be managed=() s
  be="$(detect_backend)"
  for s in "${SERVICES[@]}"; do
    if is_external "$s"; then
      local var
      var="$(env_var "$s")"
      probe "$s" "${!var}" ||
        die "$s: $var is set but does not answer: ${!var} (unset it to let this script start $s)"
      log "$s: external, answering at $(redact "${!var}")"
    else
      managed+=("$s")
    fi
  done
  echo "$be" >"$STATE/backend"
  ((${#managed[@]})) || return 0
  if [[ "$be" == docker ]]; then
    docker_up "${managed[@]}"
    return 0
  fi
  for s in "${managed[@]}"; do
    case "$s" in
      kafka) kafka_up_local ;;
      postgres) pg_up_local ;;
      redis) redis_up_local ;;
    esac
  done
}

cmd_down() {
  local be s managed=()
  be="$(backend)"
  for s in "${SERVICES[@]}"; do
    if is_external "$s"; then
      log "$s: external ($(env_var "$s") is set): not stopped"
    else
      managed+=("$s")
    fi
  done
  if ((${#managed[@]})); then
    if [[ "$be" == docker ]]; then
      docker_down "${managed[@]}"
    else
      for s in "${managed[@]}"; do
        case "$s" in
          kafka) kafka_down_local ;;
          postgres) pg_down_local ;;
          redis) redis_down_local ;;
        esac
        if probe "$s" "$(local_url "$s")"; then
          log "$s: still answering at $(local_url "$s"): it was not started by this script, left running"
        fi
      done
    fi
  fi
  rm -f "$STATE/backend"
}

redact() { # hide a password in a URL
  sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"
}

cmd_status() {
  local s url how be down=0
  be="$(backend)"
  for s in "${SERVICES[@]}"; do
    url="$(url_of "$s")"
    if is_external "$s"; then
      how="external"
    elif [[ "$be" == local ]]; then
      how="local$(local_pid_note "$s")"
    else
      how="$be"
    fi
    if probe "$s" "$url"; then
      printf '%-9s up    %s  (%s)\n' "$s" "$(redact "$url")" "$how"
    else
      printf '%-9s down  %s  (%s)\n' "$s" "$(redact "$url")" "$how"
      down=1
    fi
  done
  return "$down"
}

local_pid_note() { # local_pid_note SERVICE -> ", pid N" or ", not started by services.sh"
  local pidfile pattern
  case "$1" in
    kafka) pidfile="$STATE/kafka/kafka.pid" pattern=kafka.Kafka ;;
    postgres) pidfile="$(pg_dir)/data/postmaster.pid" pattern=postgres ;;
    redis) pidfile="$STATE/redis/redis.pid" pattern=redis-server ;;
  esac
  if pidfile_alive "$pidfile" "$pattern"; then
    echo ", pid $(head -n 1 "$pidfile")"
  elif probe "$1" "$(local_url "$1")"; then
    echo ", not started by services.sh"
  fi
}

cmd_env() {
  local s
  for s in "${SERVICES[@]}"; do
    printf 'export %s=%q\n' "$(env_var "$s")" "$(url_of "$s")"
  done
}

cmd_one() { # cmd_one start|stop SERVICE: start or stop one managed service
  local action="$1" s="${2:-}"
  case "$s" in
    kafka | postgres | redis) ;;
    *) die "usage: services.sh $action kafka|postgres|redis" ;;
  esac
  if is_external "$s"; then
    die "$s: external ($(env_var "$s") is set): this script does not $action it"
  fi
  mkdir -p "$STATE/kafka" "$STATE/redis"
  if [[ "$(backend)" == docker ]]; then
    if [[ "$action" == start ]]; then docker_up "$s"; else docker_down "$s"; fi
  else
    case "$action:$s" in
      start:kafka) kafka_up_local ;;
      start:postgres) pg_up_local ;;
      start:redis) redis_up_local ;;
      stop:kafka) kafka_down_local ;;
      stop:postgres) pg_down_local ;;
      stop:redis) redis_down_local ;;
    esac
  fi
  if [[ "$action" == stop ]] && probe "$s" "$(local_url "$s")"; then
    die "$s: still answering at $(local_url "$s"): it was not started by this script"
  fi
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

main() {
  case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    start | stop) cmd_one "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
