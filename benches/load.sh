#!/usr/bin/env bash
# Load test: the same small file fetched with wrk
#   1. directly from an nginx origin           (baseline)
#   2. through nginx as a plain reverse proxy   (the bar to beat; no token check)
#   3. through streamguard with Tencent tokens  (release build)
# and printed as ratios against the direct baseline measured in the same run.
# The three targets are measured in interleaved rounds and the median of each
# is reported, because shared machines are noisy.
#
# Needs: wrk, nginx (apt-get install -y wrk nginx-light). Usage:
#   benches/load.sh [DURATION_SECS] [CONNECTIONS] [THREADS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}; CONNS=${2:-64}; THREADS=${3:-2}; ROUNDS=${4:-3}
command -v wrk >/dev/null || { echo "needs wrk"; exit 2; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "needs nginx"; exit 2; }
cargo build --release --quiet --bin streamguard
BIN=target/release/streamguard

work=$(mktemp -d)
cleanup() { [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; [ -n "${SG:-}" ] && kill "$SG" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/www/live"
head -c 4096 /dev/urandom > "$work/www/live/seg.ts"
chmod -R a+rX "$work"
cat > "$work/nginx.conf" <<NGX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream origin { server 127.0.0.1:18101; keepalive 64; }
  server { listen 127.0.0.1:18101; root $work/www; }
  server {
    listen 127.0.0.1:18102;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGX
"$NGINX" -c "$work/nginx.conf" -e "$work/error.log"

cat > "$work/sg.toml" <<TOML
[server]
listen = ["127.0.0.1:18103"]
[admin]
listen = "127.0.0.1:18104"
[[site]]
id = "bench"
domains = ["127.0.0.1"]
origin = "http://127.0.0.1:18101"
[site.auth]
scheme = "tencent"
key = "benchkey0123456789"
backup_key = "benchbackup0123456789"
TOML
RUST_LOG=warn STREAMGUARD_WORKER_THREADS=${STREAMGUARD_WORKER_THREADS:-} "$BIN" run --config "$work/sg.toml" > "$work/sg.out" 2> "$work/sg.err" &
SG=$!
sleep 1
URL=$("$BIN" sign --config "$work/sg.toml" --expires-in 3600 "http://127.0.0.1:18103/live/seg.ts")
curl -s -o /dev/null -w "%{http_code}\n" "$URL"; curl -sf -o /dev/null "$URL" || { echo "streamguard did not serve the signed URL"; cat "$work/sg.err" "$work/sg.out"; exit 1; }

rps() { wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency "$1" | awk '/Requests\/sec/ {print $2}'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

: > "$work/direct"; : > "$work/nginx"; : > "$work/sg"
for r in $(seq "$ROUNDS"); do
  rps "http://127.0.0.1:18101/live/seg.ts" >> "$work/direct"
  rps "http://127.0.0.1:18102/live/seg.ts" >> "$work/nginx"
  rps "$URL" >> "$work/sg"
  echo "round $r: direct $(tail -1 "$work/direct")  nginx $(tail -1 "$work/nginx")  streamguard $(tail -1 "$work/sg")"
done
direct=$(median < "$work/direct"); viangx=$(median < "$work/nginx"); viasg=$(median < "$work/sg")
printf 'duration %ss x %s rounds, %s connections, %s threads, 4 KiB body; medians\n' "$DUR" "$ROUNDS" "$CONNS" "$THREADS"
printf '%-28s %12s %10s\n' target req/s ratio
printf '%-28s %12s %10s\n' "direct origin" "$direct" "1.00"
printf '%-28s %12s %10.2f\n' "nginx proxy (no auth)" "$viangx" "$(echo "$viangx / $direct" | bc -l)"
printf '%-28s %12s %10.2f\n' "streamguard (tencent auth)" "$viasg" "$(echo "$viasg / $direct" | bc -l)"
printf 'streamguard / nginx proxy: %.2f\n' "$(echo "$viasg / $viangx" | bc -l)"
