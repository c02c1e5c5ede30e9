#!/usr/bin/env bash
# Builds the container image from the repository's Dockerfile with podman and
# checks the running image end to end:
#
#   - a URL signed with `streamguard sign` is served, an unsigned one gets 403
#     with `x-streamguard-deny`;
#   - `/metrics` answers through the published admin port;
#   - the process runs as the image's non-root user (uid 10001);
#   - the image's HEALTHCHECK passes (`podman healthcheck run`);
#   - a key synced from a (fake) Tencent API is saved in the state volume and
#     still verifies after the container is replaced while the API is down.
#
# No container registry is needed: the two base images the Dockerfile names
# are made from Debian packages with mmdebstrap (from the mirror apt already
# uses) and tagged with the names the Dockerfile expects, so the real
# Dockerfile builds unchanged. The build stage's toolchain is the host's Rust
# toolchain (`rustc --print sysroot`), copied into that image.
#
# Needs root (re-runs itself with sudo otherwise), and podman, runc,
# containernetworking-plugins, mmdebstrap, python3, curl and a Rust toolchain
# on the host (`.ci/run` installs them). Everything podman stores goes to a
# temporary folder (removed on exit), configured by files of its own, so
# nothing depends on or changes the machine's podman setup.
#
# Usage: deploy/container-test.sh
#   SG_KEEP=1          keep the temporary folder (images, logs) for a look
#   SG_STORAGE_DRIVER  overlay or vfs (default: overlay when it mounts here)
#   TMPDIR             where the temporary folder goes (default /var/tmp)
set -euo pipefail
SELF=$(realpath "$0")
cd "$(dirname "$SELF")/.."

T0=$(date +%s)
PHASE_T=$T0
say() { printf 'container-test: %s\n' "$*"; }
fail() {
  printf 'container-test: FAIL: %s\n' "$*" >&2
  exit 1
}
# Starts a timed phase; the previous one's duration is printed.
phase() {
  local now
  now=$(date +%s)
  if [ -n "${PHASE_NAME:-}" ]; then
    TIMINGS+=("$(printf '%4ss  %s' $((now - PHASE_T)) "$PHASE_NAME")")
  fi
  PHASE_NAME=$1
  PHASE_T=$now
  say "== $1 (at +$((now - T0))s)"
}
TIMINGS=()

# --- prerequisites -------------------------------------------------------------

# The toolchain and crate cache are the invoking user's: resolve them before
# a sudo re-run changes $HOME.
SG_TOOLCHAIN=${SG_TOOLCHAIN:-$(rustc --print sysroot 2>/dev/null || true)}
[ -n "$SG_TOOLCHAIN" ] && [ -x "$SG_TOOLCHAIN/bin/cargo" ] && [ -x "$SG_TOOLCHAIN/bin/rustc" ] \
  || fail "no Rust toolchain (rustc --print sysroot) with cargo and rustc"
if [ -z "${SG_CARGO_HOME:-}" ]; then
  SG_CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
  # The build stage gets the crates from the host's cache (downloaded now if
  # missing), so it needs crates.io only for the index, if at all.
  cargo fetch --locked --quiet || fail "cargo fetch --locked failed"
fi
if [ "$(id -u)" -ne 0 ]; then
  say "re-running as root with sudo"
  exec sudo env "PATH=$PATH" "SG_TOOLCHAIN=$SG_TOOLCHAIN" "SG_CARGO_HOME=$SG_CARGO_HOME" \
    "SG_KEEP=${SG_KEEP:-}" "SG_STORAGE_DRIVER=${SG_STORAGE_DRIVER:-}" "TMPDIR=${TMPDIR:-}" \
    bash "$SELF" "$@"
fi
missing=()
for c in podman runc mmdebstrap python3 curl; do
  command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
[ -x /usr/lib/cni/bridge ] || missing+=("containernetworking-plugins")
[ ${#missing[@]} -eq 0 ] \
  || fail "missing: ${missing[*]} (apt-get install podman runc containernetworking-plugins mmdebstrap python3 curl)"

# --- private podman -------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/streamguard-container-test.XXXXXX")
chmod 755 "$WORK"
PIDS=()
cleanup() {
  local rc=$?
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  if [ -n "${PHASE_NAME:-}" ]; then phase "cleanup"; fi
  if [ "$rc" -ne 0 ] && [ -s "$WORK/podman.log" ]; then
    say "--- podman's messages:"
    sed 's/^/    /' "$WORK/podman.log"
  fi
  if [ "$rc" -ne 0 ] && [ -f "$WORK/containers.conf" ]; then
    for c in $(pm ps -a --format '{{.Names}}' 2>/dev/null); do
      say "--- log of container $c (last 40 lines):"
      pm logs --tail 40 "$c" 2>&1 | sed 's/^/    /'
    done
  fi
  if [ -f "$WORK/containers.conf" ]; then
    pm rm --all --force --time 2 >/dev/null 2>&1
    if [ -z "${SG_KEEP:-}" ]; then
      pm volume rm --all --force >/dev/null 2>&1
      pm rmi --all --force >/dev/null 2>&1
    fi
  fi
  if [ -n "${SG_KEEP:-}" ]; then
    say "kept $WORK"
  else
    rm -rf "$WORK" || say "could not remove all of $WORK"
  fi
  local now
  now=$(date +%s)
  TIMINGS+=("$(printf '%4ss  %s' $((now - PHASE_T)) "${PHASE_NAME:-setup}")")
  say "timings:"
  printf '  %s\n' "${TIMINGS[@]}"
  say "total $((now - T0))s"
  if [ "$rc" -eq 0 ]; then say "PASS"; else say "FAILED (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${SG_STORAGE_DRIVER:-}" ]; then
  # overlay is much faster and smaller than vfs; use it when it mounts here.
  mkdir -p "$WORK/probe/"{l,u,w,m}
  if mount -t overlay overlay -o "lowerdir=$WORK/probe/l,upperdir=$WORK/probe/u,workdir=$WORK/probe/w" \
    "$WORK/probe/m" 2>/dev/null; then
    umount "$WORK/probe/m"
    SG_STORAGE_DRIVER=overlay
  else
    SG_STORAGE_DRIVER=vfs
  fi
  rm -rf "$WORK/probe"
fi
pm() {
  podman --root "$WORK/root" --runroot "$WORK/run" --storage-driver "$SG_STORAGE_DRIVER" "$@"
}
mkdir -p "$WORK/tmp" "$WORK/networks"
# Why these settings: the machines this runs on have no systemd as PID 1 and
# limited rlimits; runc + cgroupfs + no default ulimits is what works there.
# Its own tmp and network folders: nothing shared with other podman users.
cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$WORK/tmp"
[network]
network_backend = "cni"
network_config_dir = "$WORK/networks"
EOF
export CONTAINERS_CONF="$WORK/containers.conf"
# No registries at all: a FROM that is not made here fails instead of pulling.
printf 'unqualified-search-registries = []\nshort-name-mode = "permissive"\n' >"$WORK/registries.conf"
export CONTAINERS_REGISTRIES_CONF="$WORK/registries.conf"

say "work folder $WORK, storage driver $SG_STORAGE_DRIVER, toolchain $SG_TOOLCHAIN"
say "$(podman --version), $(runc --version | head -1)"

# --- base images from Debian packages --------------------------------------------

phase "base images (mmdebstrap)"
# The Debian archive this machine's apt uses (a mirror or proxy of it).
apt-get indextargets --format '$(ORIGIN) $(REPO_URI) $(RELEASE) $(COMPONENT)' 'Created-By: Packages' \
  | awk '$1 == "Debian" && $3 ~ /^bookworm/ { print "deb", $2, $3, $4 }' | sort -u >"$WORK/sources.list"
if ! grep -q ' bookworm main' "$WORK/sources.list"; then
  say "no bookworm source in apt's lists (apt-get update not run?): using deb.debian.org"
  printf '%s\n' "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" >"$WORK/sources.list"
fi
sed 's/^/    /' "$WORK/sources.list"

# debian:bookworm-slim: the required packages and apt, as Debian's own image.
mmdebstrap --quiet --variant=minbase bookworm "$WORK/slim.tar" "$WORK/sources.list" \
  >"$WORK/mmdebstrap-slim.log" 2>&1 &
slim_pid=$!
# rust:1-bookworm: the same plus a C toolchain (ring's build) and the host's
# Rust toolchain and crate cache where the official image keeps them.
toolchain_q=$(printf '%q' "$SG_TOOLCHAIN")
registry_q=$(printf '%q' "$SG_CARGO_HOME/registry")
mmdebstrap --quiet --variant=minbase --include=gcc,libc6-dev,ca-certificates \
  --customize-hook='mkdir -p "$1/usr/local/rust" "$1/usr/local/cargo/bin" "$1/usr/local/cargo/registry"' \
  --customize-hook="cp -a $toolchain_q/bin $toolchain_q/lib \"\$1/usr/local/rust/\"" \
  --customize-hook="for d in index cache; do if [ -d $registry_q/\$d ]; then cp -a $registry_q/\$d \"\$1/usr/local/cargo/registry/\"; fi; done" \
  bookworm "$WORK/rust.tar" "$WORK/sources.list" >"$WORK/mmdebstrap-rust.log" 2>&1 &
rust_pid=$!
wait "$slim_pid" || { cat "$WORK/mmdebstrap-slim.log" >&2; fail "mmdebstrap (bookworm-slim) failed"; }
wait "$rust_pid" || { cat "$WORK/mmdebstrap-rust.log" >&2; fail "mmdebstrap (rust) failed"; }

pm import --quiet --change 'CMD ["bash"]' "$WORK/slim.tar" docker.io/library/debian:bookworm-slim >/dev/null \
  || fail "podman import (bookworm-slim) failed"
pm import --quiet \
  --change 'ENV CARGO_HOME=/usr/local/cargo' \
  --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' \
  "$WORK/rust.tar" docker.io/library/rust:1-bookworm >/dev/null \
  || fail "podman import (rust) failed"
rm -f "$WORK/slim.tar" "$WORK/rust.tar"
pm run --rm --network none docker.io/library/rust:1-bookworm sh -c 'cargo --version && rustc --version && cc --version | head -1' \
  | sed 's/^/    /' || fail "the build image's toolchain does not run"

# --- the image ---------------------------------------------------------------------

phase "podman build"
# Host network for the build: the runtime stage's apt-get and cargo's index
# reach their servers as the host does. Docker format keeps the HEALTHCHECK.
pm build --format docker --network host --pull=never -t localhost/streamguard:test . \
  >"$WORK/build.log" 2>&1 || { tail -60 "$WORK/build.log" >&2; fail "podman build failed"; }
IMAGE=localhost/streamguard:test
[ "$(pm image inspect --format '{{.Config.User}}' "$IMAGE")" = "streamguard" ] \
  || fail "image user is not streamguard"
pm image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE" | grep -q healthcheck \
  || fail "image has no HEALTHCHECK"

# --- a fake origin and a fake Tencent API on the host -------------------------------

phase "run"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0",0)); print(s.getsockname()[1])'; }
mkdir -p "$WORK/origin/live"
printf 'FLV-from-the-origin\n' >"$WORK/origin/live/test.flv"
ORIGIN_PORT=$(free_port)
python3 -m http.server --bind 0.0.0.0 --directory "$WORK/origin" "$ORIGIN_PORT" \
  >"$WORK/origin.log" 2>&1 &
PIDS+=($!)

SECRET_ID=AKIDcontainertest
SECRET_KEY=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
SYNCED_KEY=synced$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
STATIC_KEY=static$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
VENDOR_PORT=$(free_port)
cat >"$WORK/fake_tencent.py" <<'EOF'
# DescribeLivePlayAuthKey with TC3-HMAC-SHA256 checked in full; every request
# is logged to stdout as `ok DOMAIN` or `bad REASON`.
import hashlib, hmac, json, sys, time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

port, secret_id, secret_key, auth_key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

def h(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()

class Handler(BaseHTTPRequestHandler):
    def answer(self, body):
        data = json.dumps({"Response": dict(body, RequestId="fake")}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def deny(self, why):
        print("bad", why, flush=True)
        self.answer({"Error": {"Code": "AuthFailure.SignatureFailure", "Message": why}})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        hd = lambda n: (self.headers.get(n) or "").strip()
        if hd("x-tc-action") != "DescribeLivePlayAuthKey" or hd("x-tc-version") != "2018-08-01":
            return self.deny("wrong action or version")
        try:
            ts = int(hd("x-tc-timestamp"))
        except ValueError:
            return self.deny("no timestamp")
        if abs(time.time() - ts) > 300:
            return self.deny("stale timestamp")
        date = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")
        canonical = "POST\n/\n\ncontent-type:%s\nhost:%s\n\ncontent-type;host\n%s" % (
            hd("content-type").lower(), hd("host").lower(), hashlib.sha256(body).hexdigest())
        scope = date + "/live/tc3_request"
        to_sign = "TC3-HMAC-SHA256\n%d\n%s\n%s" % (
            ts, scope, hashlib.sha256(canonical.encode()).hexdigest())
        k = h(h(h(("TC3" + secret_key).encode(), date), "live"), "tc3_request")
        want = "TC3-HMAC-SHA256 Credential=%s/%s, SignedHeaders=content-type;host, Signature=%s" % (
            secret_id, scope, hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest())
        if not hmac.compare_digest(hd("authorization"), want):
            return self.deny("signature mismatch")
        domain = json.loads(body).get("DomainName", "")
        print("ok", domain, flush=True)
        self.answer({"PlayAuthKeyInfo": {"DomainName": domain, "Enable": 1, "AuthKey": auth_key,
                                         "AuthDelta": 0, "AuthBackKey": ""}})

    def log_message(self, *args):
        pass

HTTPServer(("0.0.0.0", port), Handler).serve_forever()
EOF
python3 "$WORK/fake_tencent.py" "$VENDOR_PORT" "$SECRET_ID" "$SECRET_KEY" "$SYNCED_KEY" \
  >"$WORK/vendor.log" 2>&1 &
VENDOR_PID=$!
PIDS+=("$VENDOR_PID")

# The host as the containers see it (podman adds this name to /etc/hosts).
HOST=host.containers.internal
cat >"$WORK/streamguard.toml" <<EOF
state_dir = "/var/lib/streamguard"

[server]
listen = ["0.0.0.0:8080"]

[[vendor]]
name = "tencent-fake"
kind = "tencent"
access_key = "$SECRET_ID"
secret_key = "\${FAKE_TENCENT_SECRET}"
endpoint = "http://$HOST:$VENDOR_PORT/"
sync_interval_secs = 300
request_timeout_secs = 3

[[site]]
id = "static"
domains = ["static.test"]
origin = "http://$HOST:$ORIGIN_PORT"

[site.auth]
scheme = "tencent"
key = "$STATIC_KEY"

[[site]]
id = "synced"
domains = ["synced.test"]
origin = "http://$HOST:$ORIGIN_PORT"
vendor = "tencent-fake"
EOF
chmod 644 "$WORK/streamguard.toml"

# --- the container ------------------------------------------------------------------

# podman's own complaints (without systemd it cannot set up the healthcheck
# timer: harmless, `podman healthcheck run` below checks it) go to a log that
# is shown on failure.
start_container() {
  pm run -d --pull=never --name "$1" \
    -p 127.0.0.1::8080 -p 127.0.0.1::9090 \
    -v "$WORK/streamguard.toml:/etc/streamguard/streamguard.toml:ro" \
    -v streamguard-state:/var/lib/streamguard \
    -e FAKE_TENCENT_SECRET="$SECRET_KEY" \
    "$IMAGE" >/dev/null 2>>"$WORK/podman.log" || fail "podman run $1 failed"
  PROXY=127.0.0.1:$(pm port "$1" 8080/tcp | head -1 | sed 's/.*://')
  ADMIN=127.0.0.1:$(pm port "$1" 9090/tcp | head -1 | sed 's/.*://')
  local i
  for i in $(seq 1 60); do
    if curl -fsS -o /dev/null "http://$ADMIN/readyz" 2>/dev/null; then
      say "$1 ready (proxy $PROXY, admin $ADMIN) after ${i}s"
      return 0
    fi
    [ "$(pm inspect --format '{{.State.Running}}' "$1")" = true ] || fail "container $1 exited"
    sleep 1
  done
  curl -sS "http://$ADMIN/readyz" >&2 || true
  fail "container $1 not ready within 60s"
}

# GET URL (its host only names the site) through the published proxy port;
# prints the status code.
status() {
  curl -sS -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' \
    --connect-to "::$PROXY" "$1"
}
expect_status() {
  local want=$1 url=$2 what=$3 got
  got=$(status "$url") || fail "$what: curl failed"
  [ "$got" = "$want" ] || {
    sed 's/^/    /' "$WORK/headers" >&2
    fail "$what: status $got, want $want ($url)"
  }
  say "ok: $what ($got)"
}
# Whether $WORK/metrics has a series of metric $1 with all the labels $2…
# (`name="value"`, any order) and a value above 0.
counted() {
  local name=$1 line l ok
  shift
  while read -r line; do
    ok=1
    for l in "$@"; do
      case "$line" in *"$l"*) ;; *) ok= ;; esac
    done
    if [ -n "$ok" ] && awk -v v="${line##* }" 'BEGIN { exit !(v + 0 > 0) }'; then return 0; fi
  done < <(grep "^$name{" "$WORK/metrics")
  return 1
}
# A Tencent URL signed independently of streamguard: md5(key + stream + txTime).
tencent_url() {
  python3 - "$@" <<'EOF'
import hashlib, sys, time
key, host, path = sys.argv[1:4]
t = "%X" % (int(time.time()) + 300)
stream = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
print("http://%s%s?txSecret=%s&txTime=%s" % (
    host, path, hashlib.md5((key + stream + t).encode()).hexdigest(), t))
EOF
}

start_container sg1

phase "checks"
signed=$(pm exec sg1 streamguard sign --config /etc/streamguard/streamguard.toml \
  --expires-in 300 http://static.test/live/test.flv) || fail "streamguard sign failed"
expect_status 200 "$signed" "signed request served"
grep -q 'FLV-from-the-origin' "$WORK/body" || fail "signed request: not the origin's body"
expect_status 403 http://static.test/live/test.flv "unsigned request denied"
grep -qi '^x-streamguard-deny:' "$WORK/headers" || fail "unsigned request: no x-streamguard-deny header"
say "    $(grep -i '^x-streamguard-deny:' "$WORK/headers" | tr -d '\r')"

curl -fsS "http://$ADMIN/metrics" >"$WORK/metrics" || fail "/metrics not reachable through the published port"
counted "streamguard_requests_total" 'site="static"' 'outcome="allowed"' \
  || fail "/metrics has no allowed request counted"
counted "streamguard_requests_total" 'site="static"' 'outcome="denied"' \
  || fail "/metrics has no denied request counted"
say "ok: /metrics through published port $ADMIN"

pm exec sg1 cat /proc/1/status >"$WORK/status" || fail "cannot read PID 1's status"
uid=$(awk '/^Uid:/ { print $2 }' "$WORK/status")
pname=$(awk '/^Name:/ { print $2 }' "$WORK/status")
[ "$uid" = 10001 ] && [ "$pname" = streamguard ] \
  || fail "PID 1 is $pname with uid $uid, want streamguard with 10001"
say "ok: PID 1 is streamguard running as uid $uid"

pm healthcheck run sg1 >/dev/null || fail "HEALTHCHECK failed"
say "ok: HEALTHCHECK passes"

grep -q '^ok synced.test$' "$WORK/vendor.log" \
  || { cat "$WORK/vendor.log" >&2; fail "the fake Tencent API got no correctly signed request"; }
! grep -q '^bad' "$WORK/vendor.log" \
  || { cat "$WORK/vendor.log" >&2; fail "the fake Tencent API got a badly signed request"; }
say "ok: the fake Tencent API got a TC3-HMAC-SHA256-signed DescribeLivePlayAuthKey"
synced_url=$(tencent_url "$SYNCED_KEY" synced.test /live/test.flv)
expect_status 200 "$synced_url" "URL signed with the synced key served"
expect_status 403 "$(tencent_url "$STATIC_KEY" synced.test /live/test.flv)" "synced site: other key denied"

phase "restart with the state volume, vendor down"
kill "$VENDOR_PID"
wait "$VENDOR_PID" 2>/dev/null || true
pm stop --time 10 sg1 >/dev/null 2>>"$WORK/podman.log" || fail "podman stop failed"
pm rm sg1 >/dev/null 2>>"$WORK/podman.log"
start_container sg2
expect_status 200 "$synced_url" "URL signed with the synced key served after restart"
curl -fsS "http://$ADMIN/metrics" >"$WORK/metrics" || fail "/metrics after restart"
counted streamguard_site_keys_by_source 'site="synced"' 'source="restored"' \
  || { grep keys_by_source "$WORK/metrics" >&2; fail "synced site's keys not restored from the state volume"; }
say "ok: synced key restored from /var/lib/streamguard"
pm stop --time 10 sg2 >/dev/null 2>>"$WORK/podman.log" || fail "podman stop failed"
[ "$(pm inspect --format '{{.State.ExitCode}}' sg2)" = 0 ] || fail "streamguard did not exit 0 on SIGTERM"
say "ok: clean exit on SIGTERM"
