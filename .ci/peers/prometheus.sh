# Prometheus 2.42 (Debian bookworm) scraping, every second, the loopback exporter that
# the metrics test (crates/gridflex/tests/prometheus.rs) starts. Exports
# GRIDFLEX_TEST_PROMETHEUS (the HTTP API) and GRIDFLEX_TEST_PROMETHEUS_EXPORTER (the
# address the test must serve /metrics on). Both ports are picked free at start.

# A loopback port nothing listens on (bash's /dev/tcp: no extra tool needed).
prometheus_free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# True once GET /-/ready answers 200.
prometheus_ready() {
  local status
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET /-/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  read -r -t 2 _ status _ <&3 || status=
  exec 3<&- 3>&-
  [ "$status" = 200 ]
}

prometheus_start() {
  if ! command -v prometheus >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
  prometheus --version 2>&1 | head -n 1
  PROMETHEUS_DIR=$(mktemp -d)
  local web exporter
  web=$(prometheus_free_port) || return 1
  exporter=$(prometheus_free_port) || return 1
  cat >"$PROMETHEUS_DIR/prometheus.yml" <<YML
global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}
scrape_configs: [{job_name: gridflex, static_configs: [{targets: ['127.0.0.1:$exporter']}]}]
YML
  prometheus --config.file="$PROMETHEUS_DIR/prometheus.yml" \
    --storage.tsdb.path="$PROMETHEUS_DIR/data" \
    --web.listen-address="127.0.0.1:$web" >"$PROMETHEUS_DIR/prometheus.log" 2>&1 &
  PROMETHEUS_PID=$!
  local i
  for i in $(seq 1 300); do
    if prometheus_ready "$web" 2>/dev/null; then
      export GRIDFLEX_TEST_PROMETHEUS="http://127.0.0.1:$web"
      export GRIDFLEX_TEST_PROMETHEUS_EXPORTER="127.0.0.1:$exporter"
      return 0
    fi
    if ! kill -0 "$PROMETHEUS_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "prometheus did not become ready; its log:"
  cat "$PROMETHEUS_DIR/prometheus.log"
  return 1
}

prometheus_stop() {
  if [ -n "${PROMETHEUS_PID:-}" ]; then
    kill "$PROMETHEUS_PID" 2>/dev/null || true
    wait "$PROMETHEUS_PID" 2>/dev/null || true
  fi
  if [ -n "${PROMETHEUS_DIR:-}" ]; then rm -rf "$PROMETHEUS_DIR"; fi
}

peer prometheus
