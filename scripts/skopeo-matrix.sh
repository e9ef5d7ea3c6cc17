#!/usr/bin/env bash
# Provide several real skopeo releases (hence several experimental-image-proxy
# protocol versions) for the test suite, without touching the system's apt
# sources:
#   - the host's own Debian 12 skopeo (/usr/bin/skopeo, installed via apt);
#   - skopeo from newer Debian suites, unpacked with their own libc and
#     libraries into .cache/skopeo-matrix/<suite>/root and started through that
#     suite's dynamic loader (a newer glibc cannot be loaded by the host's).
# Writes wrappers .cache/skopeo-matrix/bin/skopeo-X.Y and the list file
# .cache/skopeo-matrix/list (one wrapper per line, oldest first).
# Idempotent: once everything is unpacked a re-run needs no network.
set -euo pipefail

SUITES=(trixie sid)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
M=$ROOT/.cache/skopeo-matrix
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
log() { echo "skopeo-matrix: $*" >&2; }
die() { log "error: $*"; exit 1; }

# 1. The host's skopeo; it also pulls in containers-common, whose
#    /etc/containers/policy.json every skopeo build below reads at run time.
if [[ ! -x /usr/bin/skopeo ]]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y skopeo || { apt-get update && apt-get install -y skopeo; }
fi
[[ -f /etc/containers/policy.json ]] || die "/etc/containers/policy.json missing (containers-common)"

# The Debian mirror the machine already uses (never hard-coded here).
source "$(dirname "${BASH_SOURCE[0]}")/lib/debian-mirror.sh"

# Only the library packages of skopeo's dependency closure: the Go binary needs
# nothing else (containers-common etc. are configuration, taken from the host).
lib_closure() {
  local -a queue=(skopeo) seen=()
  local p d
  while ((${#queue[@]})); do
    p=${queue[0]}; queue=("${queue[@]:1}")
    [[ " ${seen[*]} " == *" $p "* ]] && continue
    seen+=("$p")
    for d in $(apt-cache "${APT[@]}" show --no-all-versions "$p" |
        sed -n 's/^\(Pre-\)\{0,1\}Depends: //p' | tr ',' '\n' |
        sed 's/|.*//; s/(.*)//; s/:any//; s/[[:space:]]//g'); do
      [[ $d == lib* ]] && queue+=("$d")
    done
  done
  printf '%s\n' "${seen[@]}"
}

# 2. One private prefix per suite.
install_suite() {
  local suite=$1 dir=$M/$1 apt=$M/apt-$1 debs=$M/debs/$1 uri pkg
  [[ -f $dir/.complete ]] && return 0
  uri=$(mirror)
  [[ -n $uri ]] || die "no Debian mirror found in /etc/apt sources"
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$debs"
  echo "deb [signed-by=$KEYRING] $uri $suite main" >"$apt/sources.list"
  # Isolate from the host's sources, pinning and dpkg status; the host's
  # apt.conf.d (proxy settings etc.) still applies on purpose. A binary cache
  # file avoids re-parsing the lists on every apt-cache call (Docker images
  # disable it); the _apt sandbox user may not be able to write to the checkout.
  APT=(-o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
       -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
       -o Dir::State="$apt" -o Dir::State::Lists="$apt/lists" -o Dir::State::status=/dev/null
       -o Dir::Cache="$apt/cache" -o Dir::Cache::pkgcache="$apt/cache/pkgcache.bin"
       -o Dir::Cache::srcpkgcache= -o APT::Sandbox::User=root)
  apt-get "${APT[@]}" -qq update ||
    die "apt update for $suite failed (if it is a signature error, $KEYRING is too old for $suite)"
  lib_closure >"$debs/packages"
  log "$suite: $(tr '\n' ' ' <"$debs/packages")"
  # Cached .debs are reused (apt-get download keeps the pool file name).
  (cd "$debs" && for pkg in $(cat packages); do
     compgen -G "${pkg}_*.deb" >/dev/null || apt-get "${APT[@]}" -qq download "$pkg"
   done)
  # Unpack into a scratch dir first so an interrupted run is never "complete".
  rm -rf "$dir" "$dir.tmp"; mkdir -p "$dir.tmp/root"
  for pkg in $(cat "$debs/packages"); do
    dpkg -x "$(compgen -G "$debs/${pkg}_*.deb" | sort -V | tail -n1)" "$dir.tmp/root"
  done
  mv "$dir.tmp" "$dir"
  # ld.so falls back to the HOST's library dirs for anything missing from
  # --library-path, so prove every NEEDED entry resolved inside the prefix.
  local out
  out=$(run_args "$suite" && "${RUN[@]:0:3}" --list "${RUN[@]:3}")
  if grep -vF "$dir/root/" <<<"$out" | grep -q '=>\|not found'; then
    die "$suite: libraries resolved outside the prefix:"$'\n'"$out"
  fi
  touch "$dir/.complete"
}

# Sets RUN to the loader command line for a suite. Pick the loader as a real
# file (under usr/lib/<triplet>): lib64/ entries are absolute symlinks that
# would resolve to the host's own loader.
run_args() {
  local r=$M/$1/root ld triplet
  ld=$(find "$r" -type f -name 'ld-linux*.so*' | head -n1)
  [[ -n $ld ]] || die "$1: no dynamic loader in $r"
  triplet=$(basename "$(dirname "$ld")")
  RUN=("$ld" --library-path "$r/usr/lib/$triplet:$r/lib/$triplet" "$r/usr/bin/skopeo")
}

for s in "${SUITES[@]}"; do install_suite "$s"; done

# 3. Wrappers named after each binary's real major.minor; paths are resolved
#    relative to the wrapper so the cache can move with the checkout.
rm -rf "$M/bin"; mkdir -p "$M/bin"
write_wrapper() { # <exec line, using $M for the cache dir> <version string>
  local mm w
  mm=$(sed -nE 's/.*version ([0-9]+\.[0-9]+).*/\1/p' <<<"$2")
  [[ -n $mm ]] || die "cannot parse version from: $2"
  w=$M/bin/skopeo-$mm
  [[ -e $w ]] && die "two releases map to $w"
  printf '#!/bin/sh\nM=$(cd "$(dirname "$0")/.." && pwd)\nexec %s "$@"\n' "$1" >"$w"
  chmod +x "$w"
  echo "$mm $w $2"
}
{
  write_wrapper /usr/bin/skopeo "$(/usr/bin/skopeo --version)"
  for s in "${SUITES[@]}"; do
    run_args "$s"
    line=$(printf '"%s" ' "${RUN[@]}")
    write_wrapper "${line//"$M"/\$M}" "$("${RUN[@]}" --version)"
  done
} | sort -V -k1,1 | cut -d' ' -f2- >"$M/.out"

# 4. Report and the list the test runner reads (oldest first).
cat "$M/.out"
cut -d' ' -f1 "$M/.out" >"$M/list"
rm -f "$M/.out"
