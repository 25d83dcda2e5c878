#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the real servers the
# tests start (redis-server, moto for DynamoDB+SNS, aiosmtpd for SMTP) and
# clients they drive (headless Chromium, chromedriver and selenium, prometheus,
# prometheus-alertmanager), then
# runs format, lint, docs and every test. Each test starts its own servers
# on free loopback ports and stops them; none is left running.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
VENV="${IAMALIVE_TEST_VENV:-$PWD/.test-env/venv}"
export IAMALIVE_TEST_VENV="$VENV"

install_servers() {
  # redis-cli (package redis-tools, a dependency of redis-server) builds
  # the test Redis Cluster.
  if { ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; } ||
     { ! command -v redis-cli >/dev/null 2>&1 && [ ! -x /usr/bin/redis-cli ]; } ||
     { ! command -v tinyproxy >/dev/null 2>&1 && [ ! -x /usr/bin/tinyproxy ]; } ||
     [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || [ ! -d /usr/share/fonts/truetype/dejavu ] ||
     # Prometheus scrapes /metrics and Alertmanager posts to its webhook
     # endpoint in the server's tests: the real clients.
     [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/prometheus-alertmanager ]; then
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server redis-tools tinyproxy chromium chromium-driver fonts-dejavu-core prometheus prometheus-alertmanager >/dev/null
  fi
  if ! "$VENV/bin/python" -c "import moto, aiosmtpd, flask, flask_cors, cfnlint, selenium" >/dev/null 2>&1; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "moto[dynamodb,sns]" flask flask-cors aiosmtpd cfn-lint selenium
  fi
}

# A clean run writes a few GiB under target/. CI builds once, so incremental
# state would only take disk; say so up front when the disk is nearly full,
# rather than failing half-way with "No space left on device".
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
mkdir -p "$target_dir"
free_kib=$(df -Pk "$target_dir" | awk 'NR==2 {print $4}')
if [ "${free_kib:-0}" -lt $((3 * 1024 * 1024)) ]; then
  echo "warning: only $((free_kib / 1024)) MiB free for $target_dir; a clean build and test run needs about 3 GiB" >&2
fi

echo "==> installing test servers (in the background) and building"
log=$(mktemp)
install_servers >"$log" 2>&1 &
installer=$!
cargo fmt --all -- --check
cargo build --workspace --all-targets --all-features --quiet
if ! wait "$installer"; then
  cat "$log"; echo "installing the test servers failed" >&2; exit 1
fi
rm -f "$log"
echo "==> the Lambda deployment template"
"$VENV/bin/cfn-lint" examples/dynamo-sns/template.yaml
echo "==> clippy"
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
echo "==> docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet
echo "==> tests"
cargo test --workspace --all-features --no-fail-fast
