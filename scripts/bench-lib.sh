# shellcheck shell=bash
# What the benchmark scripts (scripts/bench-deposits, scripts/bench-relay) share: the smoke
# mode, the service binary they run, oha, and setting up users, wallets and tokens through
# the API. Source it after lib.sh:
#   source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
#
# SMOKE=1 makes a benchmark a test of itself (scripts/test runs both this way): every phase
# runs, for seconds, on tiny data, with the debug build that `cargo test` leaves behind; the
# report goes to the run's artifacts instead of docs/, and anything that a measured run
# would only note in its report (a failed request, a database mismatch, an event missing
# on Kafka, a queue left undrained) stops the run with a non-zero exit.
#
# Provides: SMOKE, bench_expect, bench_binary, ensure_oha, free_port, mint_token,
# token_claim, api_post, create_wallets.

SMOKE="${SMOKE:-0}"
[[ "$SMOKE" == 0 || "$SMOKE" == 1 ]] || die "SMOKE must be 0 or 1, got '$SMOKE'"

# bench_expect WHAT CMD...: CMD (a check) should succeed. When it does not, a smoke run dies
# naming WHAT; a measured run warns and goes on, and its report shows the figures.
bench_expect() {
  local what="$1"
  shift
  "$@" && return 0
  ((SMOKE)) && die "smoke: $what"
  warn "$what"
}

# bench_binary OUT: builds the service and sets BIN to the binary to run: in a measured run
# a private copy of the release build in OUT (others may rebuild target/release meanwhile);
# in a smoke run the debug build in place (after `cargo test` this build is a no-op: the
# README test builds the same `--bin wallet-hub`). Sets BUILD_PROFILE, BUILD_SECS and
# BUILD_WAITED (yes when cargo waited for another build's lock).
# WALLET_HUB_BENCH_BIN=PATH skips the build and runs that binary (copied into OUT, as a
# release build is): for a machine whose cores are busy with others' builds, or to measure
# a binary built elsewhere. BUILD_PROFILE is then "prebuilt".
bench_binary() {
  local out="$1" target_dir="${CARGO_TARGET_DIR:-$ROOT/target}" t0=$SECONDS args=(build --locked --bin wallet-hub)
  if [[ -n "${WALLET_HUB_BENCH_BIN:-}" ]]; then
    [[ -x "$WALLET_HUB_BENCH_BIN" ]] || die "WALLET_HUB_BENCH_BIN=$WALLET_HUB_BENCH_BIN is not an executable file"
    info "using the prebuilt $WALLET_HUB_BENCH_BIN (WALLET_HUB_BENCH_BIN), not building"
    # shellcheck disable=SC2034 # BUILD_*: for the sourcing script's report
    BUILD_PROFILE=prebuilt BUILD_SECS=0 BUILD_WAITED=no
    cp "$WALLET_HUB_BENCH_BIN" "$out/wallet-hub"
    BIN="$out/wallet-hub"
    return 0
  fi
  BUILD_PROFILE=release
  ((SMOKE)) && BUILD_PROFILE=debug
  [[ "$BUILD_PROFILE" == debug ]] || args+=(--release)
  info "building the service (cargo ${args[*]}; waits if another cargo holds the target dir)"
  if ! (cd "$ROOT" && cargo "${args[@]}") >"$out/build.log" 2>&1; then
    show_log_tail "$out/build.log" 40
    die "$BUILD_PROFILE build failed (log: $out/build.log)"
  fi
  # shellcheck disable=SC2034 # BUILD_*: for the sourcing script's report
  BUILD_SECS=$((SECONDS - t0))
  BUILD_WAITED=no
  # shellcheck disable=SC2034
  grep -q 'Blocking waiting for file lock' "$out/build.log" && BUILD_WAITED=yes
  BIN="$target_dir/$BUILD_PROFILE/wallet-hub"
  if [[ "$BUILD_PROFILE" == release ]]; then
    cp "$BIN" "$out/wallet-hub"
    BIN="$out/wallet-hub"
  fi
}

OHA_VERSION=1.16.0 # installed when oha is missing
# ensure_oha OUT: oha on PATH, installed with cargo when missing; sets OHA and OHA_V.
ensure_oha() {
  export PATH="$HOME/.cargo/bin:$PATH"
  if ! command -v oha >/dev/null 2>&1; then
    command -v cargo >/dev/null 2>&1 || die "oha is missing and there is no cargo to install it with"
    info "installing oha $OHA_VERSION (cargo install --locked) into ~/.cargo/bin; takes a few minutes"
    cargo install oha --locked --version "$OHA_VERSION" >"$1/oha-install.log" 2>&1 || {
      show_log_tail "$1/oha-install.log" 30
      die "cargo install oha failed"
    }
  fi
  OHA="$(command -v oha)"
  # shellcheck disable=SC2034 # for the sourcing script's report
  OHA_V="$("$OHA" --version 2>/dev/null | head -n 1)"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# mint_token SUBJECT [SCOPE...]: a bearer token for SUBJECT from the local development
# issuer whose JWKS is BENCH_JWKS, the file the benchmark's service trusts
# (WALLET_HUB__AUTH__JWKS; `wallet-hub token` creates the issuer there on first use). Valid
# for 4 hours: longer than any benchmark runs.
mint_token() {
  local sub="$1" scope args=()
  shift
  for scope in "$@"; do args+=(--scope "$scope"); done
  env -i PATH="$PATH" HOME="$HOME" WALLET_HUB__AUTH__JWKS="$BENCH_JWKS" \
    "$BIN" token --sub "$sub" --ttl-minutes 240 "${args[@]}" ||
    die "wallet-hub token --sub $sub failed"
}

# token_claim TOKEN NAME: a claim of a JWT, as text (the payload is base64url, unpadded).
token_claim() {
  jq -Rr --arg name "$2" 'split(".")[1] | gsub("-"; "+") | gsub("_"; "/")
    | . + ("=" * ((4 - length % 4) % 4)) | @base64d | fromjson | .[$name]' <<<"$1"
}

# api_post TOKEN PATH JSON: POST to the API at $API as TOKEN's subject; prints the response
# body and dies unless the answer is 201.
api_post() {
  local body code
  body="$(mktemp)"
  code="$(curl -sS -o "$body" -w '%{http_code}' -H 'content-type: application/json' \
    -H "Authorization: Bearer $1" -d "$3" "$API$2")" || code=000
  if [[ "$code" != 201 ]]; then
    cat "$body" >&2 || true
    rm -f "$body"
    die "POST $2 answered $code"
  fi
  cat "$body"
  rm -f "$body"
}

# create_wallets N FILE: N users, each registered by its own token subject (bench-user-1..N,
# one user per subject), each opening one USD wallet; the wallet ids go to FILE, one a line.
create_wallets() {
  local n="$1" file="$2" i token
  : >"$file"
  for ((i = 1; i <= n; i++)); do
    token="$(mint_token "bench-user-$i")"
    api_post "$token" /v1/users "{\"email\":\"bench-$i@example.com\",\"name\":\"Bench $i\"}" >/dev/null
    api_post "$token" /v1/wallets "{\"name\":\"Bench $i\",\"currency\":\"USD\"}" | jq -r .id >>"$file"
  done
}
