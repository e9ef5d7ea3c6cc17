#!/usr/bin/env bash
# Real container images built by tools independent of this project, cached as
# conformance fixtures for the layer extractor:
#
#   minbase  debootstrap --variant=minbase bookworm, packed by umoci as one
#            gzip layer: a real distribution tree (~6,800 entries, hardlinks).
#   layered  minbase plus several umoci repacks (one layer each) that cover
#            deletions, dir<->file and dir->symlink replacements (including
#            etc/apt/apt.conf.d becoming a file and var/tmp becoming a link to
#            the host's /tmp), special modes and owners, hardlinks within and
#            across layers, symlink chains, device nodes, FIFOs, xattrs and
#            file capabilities, hostile names (255 bytes, a >4000-byte path,
#            non-UTF-8, newline, leading dash), big/empty files, odd mtimes,
#            and re-creation of deleted paths. Whiteouts are umoci's own.
#   buildah  minbase copied into a private buildah store, then a second layer
#            that removes and re-creates directories so that buildah emits an
#            opaque whiteout (.wh..wh..opq), plus ordinary whiteouts. Layers
#            stay uncompressed (application/vnd.oci.image.layer.v1.tar).
#
# Each image is also converted by skopeo to oci-archive, docker-archive,
# dir (v2s2) and a zstd OCI layout; a conversion that fails is recorded in
# fixtures.json under "failed". The reference tree of each image is
# `umoci unpack` (as root) of the OCI layout tag: ref/<tag>/rootfs.
#
# Things worth knowing (umoci 0.4.7, buildah 1.28, see also listings/):
#   - umoci writes a dir->file replacement as the new file entry FOLLOWED by
#     whiteouts of the old children below it (etc/apt/apt.conf.d then
#     etc/apt/apt.conf.d/.wh.*); the same for dir->symlink (var/tmp -> /tmp
#     then var/tmp/.wh.*). A whiteout may thus name a path below a non-dir or
#     through a symlink in the same layer.
#   - umoci unpack resolves such a whiteout through the new symlink (scoped
#     to the rootfs): for fixture/replace/dir2rel-trap -> target-trap it
#     deletes target-trap/keep, which the OCI spec says a whiteout must not
#     touch (whiteouts apply to lower layers only). The reference therefore
#     lacks fixture/replace/target-trap/keep; a spec-following extractor keeps
#     it. The other replaced paths are built so both readings agree.
#   - A hardlink made in a later layer to an older file changes the older
#     file's link count, so umoci re-emits both names: the full file under
#     the first name in its walk order and a 'link' entry for the other
#     (here the new name fixture/links/hl-to-older is the file and the older
#     fixture/links/older the link). Removing one name of a pair re-emits the
#     survivor as a plain file. A hardlink to a symlink is a 'link' entry.
#   - umoci writes the root directory itself as an entry named "." when its
#     metadata changed (first fixture layer).
#   - umoci records user.* and security.capability xattrs as SCHILY.xattr
#     PAX records (binary values included); whiteouts have mtime 0.
#   - buildah's vfs driver never emits opaque whiteouts (its naive diff writes
#     one .wh. per removed child), so the buildah store uses the overlay
#     driver, whose native diff turns a re-created directory into
#     .wh..wh..opq. `buildah push --disable-compression` to oci: still
#     gzips, so the image is copied with skopeo
#     --dest-oci-accept-uncompressed-layers.
#   - buildah's layer headers keep the file type bits in the mode field
#     (040755, 0100644, 0120777, 020666...), and the whiteouts made from
#     overlay whiteouts (which the kernel hardlinks to one shared inode) are
#     regular-file entries that carry a stray linkname (e.g. etc/.wh.motd with
#     linkname etc/issue.net). The opaque marker is a mode 0755 regular file.
#
# Output: .cache/real-images/<key>/ with fixtures.json, where key hashes this
# script and the tool versions. Idempotent; a cached run does nothing.
# Usage: real-images.sh [--print-dir]      (run as root)
set -euo pipefail
export LC_ALL=C
umask 022

SELF=$(readlink -f "${BASH_SOURCE[0]}")
ROOT=$(cd -P "$(dirname "$SELF")/.." && pwd)
SKOPEO=/usr/bin/skopeo
SKOPEO22=$ROOT/.cache/skopeo-matrix/bin/skopeo-1.22
log() { echo "real-images: $*" >&2; }
die() { log "error: $*"; exit 1; }

VERSIONS=$(debootstrap --version && umoci --version && buildah --version && "$SKOPEO" --version) ||
  die "debootstrap, umoci, buildah and skopeo are needed (scripts/setup.sh installs them)"
VERSIONS+=$'\n'$("$SKOPEO22" --version) || die "$SKOPEO22 does not run: run scripts/skopeo-matrix.sh first"
mkdir -p "$ROOT/.cache/real-images"
OUT=$(cd -P "$ROOT/.cache/real-images" && pwd)
KEY=$({ cat "$SELF" "$(dirname "$SELF")/lib/debian-mirror.sh"; echo "$VERSIONS"; } | sha256sum | cut -c1-16)
DIR=$OUT/$KEY

if [[ ${1:-} == --print-dir ]]; then
  [[ -f $DIR/fixtures.json ]] || { log "not built (run scripts/real-images.sh as root)"; exit 1; }
  echo "$DIR"; exit 0
fi
[[ $# == 0 ]] || die "usage: $0 [--print-dir]"
if [[ -f $DIR/fixtures.json ]]; then echo "$DIR"; exit 0; fi
[[ $(id -u) == 0 ]] || die "must run as root (device nodes, owners, umoci unpack)"

# One builder at a time; the loser of a race finds the finished cache.
exec 9>"$OUT/.lock"
flock 9
if [[ -f $DIR/fixtures.json ]]; then echo "$DIR"; exit 0; fi

# Unmount everything below a directory (buildah's overlay mounts), deepest first.
unmount_under() {
  local m
  for m in $(awk -v p="$1/" 'substr($5, 1, length(p)) == p { print $5 }' /proc/self/mountinfo | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
}
remove_tree() { [[ ! -e $1 ]] || { unmount_under "$1"; rm -rf "$1"; }; }

# Leftovers of interrupted runs. The build dir name is short on purpose: the
# deepest fixture path is 4001 bytes and must stay under PATH_MAX with its
# absolute prefix.
for stale in "$OUT"/.t[0-9]*; do
  if [[ -d $stale ]]; then remove_tree "$stale"; fi
done
T=$OUT/.t$$
W=$T/work
remove_tree "$T"
cleanup() {
  local rc=$?
  if ((rc)) && [[ -n ${REAL_IMAGES_KEEP_FAILED:-} ]]; then
    unmount_under "$T"; log "failed build kept in $T"
  else
    remove_tree "$T"
  fi
}
trap cleanup EXIT
mkdir -p "$W" "$T/ref" "$T/listings"

# --- timing --------------------------------------------------------------
START=$(date +%s%N)
timed() { # <label> <command...>
  local t0 t1
  t0=$(date +%s%N)
  "${@:2}"
  t1=$(date +%s%N)
  log "$(printf '%-24s %7.1fs' "$1" "$(((t1 - t0) / 1000000))e-3")"
}

# --- the Debian mirror the machine already uses (never hard-coded) -------
source "$(dirname "$SELF")/lib/debian-mirror.sh"

# Copy a tree preserving owners, modes, xattrs, hardlinks, devices, mtimes.
copy_tree() { # <from> <to>
  tar --xattrs --xattrs-include='*' --numeric-owner -C "$1" -cf - . |
    tar --xattrs --xattrs-include='*' --numeric-owner -C "$2" -xpf -
}

L=$T/oci
ROOTFS=$W/debootstrap

# --- 1. minbase ------------------------------------------------------------
debootstrap_minbase() {
  local uri
  uri=$(mirror)
  [[ -n $uri ]] || die "no Debian mirror found in /etc/apt sources"
  debootstrap --variant=minbase bookworm "$ROOTFS" "$uri" >"$W/debootstrap.log" 2>&1 ||
    { tail -n 20 "$W/debootstrap.log" >&2; die "debootstrap failed"; }
}
umoci_minbase() {
  umoci init --layout "$L"
  umoci new --image "$L:minbase"
  umoci unpack --image "$L:minbase" "$W/b-minbase"
  copy_tree "$ROOTFS" "$W/b-minbase/rootfs"
  umoci repack --image "$L:minbase" --history.created_by "debootstrap --variant=minbase bookworm" "$W/b-minbase"
  rm -rf "$W/b-minbase"
}

# --- 2. layered: one umoci repack per layer() call -------------------------
B=$W/b-layered
R=$B/rootfs
LAYER=0
# Runs "$@" inside the bundle's rootfs (relative paths: the 4001-byte path
# only works relative), gives everything it touched a fixed mtime, repacks.
layer() { # <description> <function>
  LAYER=$((LAYER + 1))
  touch -d '-2 seconds' "$W/mark"
  (cd "$R" && "$2")
  (cd "$R" && find . -newer "$W/mark" ! -name 'mtime-*' -exec touch -h -d "@$((1577836800 + LAYER * 86400))" {} +)
  (cd "$R" && special_mtimes)
  umoci repack --refresh-bundle --image "$L:layered" --history.created_by "fixture layer $LAYER: $1" "$B"
}
special_mtimes() { # re-applied after every layer's stamping; no-op if absent
  [[ ! -e fixture/files/mtime-1970 ]] || touch -h -d @13046400 fixture/files/mtime-1970 fixture/files/mtime-1970-link
  [[ ! -e fixture/files/mtime-2100 ]] || touch -h -d @4102444800 fixture/files/mtime-2100
}

l_prepare() { # things later layers delete, replace or link to
  mkdir -p fixture/replace/dir2rel fixture/replace/dir2rel-trap \
    fixture/replace/target fixture/replace/target-trap fixture/recreate/dir fixture/links
  echo 'will become a directory' >fixture/replace/file2dir
  echo 'child of a dir replaced by a symlink' >fixture/replace/dir2rel/only-here
  echo 'must survive: a whiteout below dir2rel-trap is not about me' >fixture/replace/dir2rel-trap/keep
  echo 'target of a relative symlink' >fixture/replace/target-trap/keep
  echo 'target dir' >fixture/replace/target/file
  echo 'original' >fixture/recreate/file
  echo 'original child' >fixture/recreate/dir/child
  echo 'hardlinked from a later layer' >fixture/links/older
  # var/tmp (mode 1777, from debootstrap) gets a child, so that replacing it
  # by a symlink to the host's /tmp makes umoci emit var/tmp/.wh.<child>.
  echo 'a whiteout for me must not touch the host /tmp' >var/tmp/.fixture-canary
}
l_delete() { # deletions and type changes
  rm -rf usr/share/doc/*
  rm -f etc/issue.net etc/motd usr/share/common-licenses/GPL-2
  rm -rf etc/apt/apt.conf.d
  printf 'APT::Install-Recommends "false";\n' >etc/apt/apt.conf.d
  chmod 0644 etc/apt/apt.conf.d
  rm fixture/replace/file2dir
  mkdir fixture/replace/file2dir
  echo 'inside a directory that replaced a file' >fixture/replace/file2dir/child
  rm -rf fixture/recreate/file fixture/recreate/dir
}
l_links() { # symlinks and hardlinks
  rm -rf var/tmp
  ln -s /tmp var/tmp
  rm -rf fixture/replace/dir2rel fixture/replace/dir2rel-trap
  ln -s target fixture/replace/dir2rel
  ln -s target-trap fixture/replace/dir2rel-trap
  cd fixture/links
  echo 'end of the chain' >file
  ln -s file chain-c
  ln -s chain-c chain-b
  ln -s chain-b chain-a
  ln -s does/not/exist dangling
  ln -s ../replace/target to-dir
  echo 'two names, one layer' >hl-a
  ln hl-a hl-b
  ln older hl-to-older
  ln -P chain-a hl-to-symlink
}
l_modes() { # modes, owners, device nodes, FIFOs
  mkdir -p fixture/modes fixture/owners fixture/dev
  cd fixture/modes
  for m in 4755 2755 6755 1644 7777 0000 0707 0400; do echo "mode $m" >"file-$m"; chmod "$m" "file-$m"; done
  for m in 1777 2775 3770 4755 0700 0707; do mkdir "dir-$m"; chmod "$m" "dir-$m"; done
  mkdir dir-0555; echo 'in a read-only dir' >dir-0555/child; chmod 0555 dir-0555
  mkdir dir-0000; echo 'in a mode 0000 dir' >dir-0000/child; chmod 0000 dir-0000
  cd ../owners
  echo 'owned by 1234:5678' >both; chown 1234:5678 both
  echo 'group 5678 only' >group-only; chgrp 5678 group-only
  mkdir dir-both; chown 1234:5678 dir-both; chmod 2770 dir-both
  echo 'setuid, owned by 1234' >setuid-1234; chown 1234:5678 setuid-1234; chmod 4750 setuid-1234
  cd ../dev
  mknod -m 0666 null c 1 3
  mknod -m 0604 loop0 b 7 0
  mknod -m 0000 zero-0000 c 1 5
  mkfifo -m 0600 fifo-0600
  mkfifo -m 0666 fifo-0666
}
l_xattrs() { # user xattrs and a file capability
  mkdir -p fixture/xattrs/dir
  cd fixture/xattrs
  echo 'has xattrs' >file
  setfattr -n user.fixture -v 'some value' file
  setfattr -n user.binary -v 0x00ff0afe7f80 file
  setfattr -n user.fixture -v 'a directory value' dir
  cp ../../usr/bin/env env-netraw
  setcap cap_net_raw+ep env-netraw
}
l_names() { # names, sizes, mtimes, re-creations
  mkdir -p fixture/names/bytes fixture/files
  cd fixture/names
  local n255 n255b long i
  n255=$(printf 'n%.0s' {1..255}); n255b=$(printf 'm%.0s' {1..255})
  echo '255-byte name' >"$n255"
  echo 'another 255-byte name, deleted later' >"$n255b"
  long=long
  for i in {1..15}; do long+=/$(printf "$((i % 10))%.0s" {1..250}); done
  mkdir -p "$long"
  i=$((4001 - (${#PWD} - ${#R}) - ${#long} - 1))   # file name length for a 4001-byte path
  echo 'at the end of a 4001-byte path' >"$long/$(printf 'f%.0s' $(seq "$i"))"
  echo caf >bytes/$'caf\xe9'
  echo xff >bytes/$'x\xff'
  echo xfe >bytes/$'x\xfe'
  echo fffe >bytes/$'\xff\xfe'
  echo newline >$'new\nline'
  echo dash >'-n  leading dash, two spaces '
  cd ../files
  python3 -c 'import random, sys; sys.stdout.buffer.write(random.Random(1).randbytes(5 * 1024 * 1024 + 7))' >big-5MiB
  : >empty; : >.empty-hidden
  echo 1970 >mtime-1970; ln -s mtime-1970 mtime-1970-link
  echo 2100 >mtime-2100
  cd ../..
  echo 'recreated after deletion' >fixture/recreate/file
  mkdir fixture/recreate/dir; echo 'new child' >fixture/recreate/dir/new-child
  echo 'issue.net recreated' >etc/issue.net
  mkdir usr/share/doc/bash; echo 'doc dir recreated' >usr/share/doc/bash/README.fixture
}
l_late() { # whiteouts for special names
  rm fixture/names/"$(printf 'm%.0s' {1..255})"   # whiteout name is 259 bytes
  rm fixture/names/bytes/$'x\xfe'
  rm fixture/names/$'new\nline'
  rm fixture/links/hl-b
}
build_layered() {
  umoci unpack --image "$L:minbase" "$B"
  [[ $(($(wc -c <<<"$R") + 4001)) -lt 4095 ]] || die "$R is too deep for the 4001-byte fixture path"
  layer "files later layers change" l_prepare
  layer "deletions, dir->file, file->dir" l_delete
  layer "symlinks, dir->symlink, hardlinks" l_links
  layer "modes, owners, devices, FIFOs" l_modes
  layer "xattrs, file capability" l_xattrs
  layer "names, sizes, mtimes, re-creations" l_names
  layer "whiteouts of special names" l_late
  rm -rf "$B"
  umoci gc --layout "$L"
}

# --- 3. buildah (private store) -------------------------------------------
BR=$W/buildah
bah() { buildah --root "$BR/root" --runroot "$BR/run" --storage-driver overlay "$@"; }
build_buildah() {
  mkdir -p "$BR"
  # Only our own store: no host storage.conf, no STORAGE_* overrides.
  printf '[storage]\ndriver = "overlay"\nrunroot = "%s"\ngraphroot = "%s"\n' "$BR/run" "$BR/root" >"$BR/storage.conf"
  export CONTAINERS_STORAGE_CONF=$BR/storage.conf
  unset STORAGE_DRIVER STORAGE_OPTS
  local c m
  c=$(bah from scratch)
  m=$(bah mount "$c")
  copy_tree "$ROOTFS" "$m"
  bah commit -q --format oci "$c" localhost/fixture-minbase:latest >/dev/null
  bah rm "$c" >/dev/null
  c=$(bah from localhost/fixture-minbase:latest)
  m=$(bah mount "$c")
  # Removed wholesale and re-created: overlay marks them opaque.
  rm -rf "$m/usr/share/doc" "$m/etc/default"
  mkdir "$m/usr/share/doc" "$m/etc/default"
  echo 'only file in a re-created dir' >"$m/usr/share/doc/README.fixture"
  echo 'FIXTURE=1' >"$m/etc/default/fixture"
  # Ordinary deletions, and the two replacements that umoci writes with
  # whiteouts below the new entry.
  rm -f "$m/etc/issue.net" "$m/etc/motd"
  rm -rf "$m/usr/share/man"
  rm -rf "$m/etc/apt/apt.conf.d"; echo 'APT::Install-Recommends "false";' >"$m/etc/apt/apt.conf.d"
  rm -rf "$m/var/tmp"; ln -s /tmp "$m/var/tmp"
  bah commit -q --format oci "$c" localhost/fixture-buildah:latest >/dev/null
  bah umount "$c" >/dev/null
  "$SKOPEO" copy -q --dest-oci-accept-uncompressed-layers \
    "containers-storage:[overlay@$BR/root+$BR/run]localhost/fixture-buildah:latest" "oci:$L:buildah"
  bah rm --all >/dev/null
  bah rmi --all >/dev/null 2>&1 || true
  unset CONTAINERS_STORAGE_CONF
  remove_tree "$BR"
}

# --- listings and checks ---------------------------------------------------
# One line per layer entry: layer index, type, mode, uid:gid, size, mtime,
# name (non-printable bytes as \xNN), link target, xattr names.
list_layers() { # <layout> <tag>
  python3 - "$1" "$2" <<'PY'
import json, os, sys, tarfile
layout, tag = sys.argv[1], sys.argv[2]
blob = lambda d: os.path.join(layout, "blobs", *d.split(":", 1))
index = json.load(open(os.path.join(layout, "index.json")))
desc = next(m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
manifest = json.load(open(blob(desc["digest"])))
def esc(s):
    b = s.encode("utf-8", "surrogateescape")
    return "".join(chr(c) if 0x20 < c < 0x7f and c != 0x5c else "\\x%02x" % c for c in b)
types = {tarfile.REGTYPE: "f", tarfile.AREGTYPE: "f", tarfile.DIRTYPE: "d", tarfile.SYMTYPE: "l",
         tarfile.LNKTYPE: "h", tarfile.CHRTYPE: "c", tarfile.BLKTYPE: "b", tarfile.FIFOTYPE: "p"}
out = sys.stdout
for i, layer in enumerate(manifest["layers"]):
    mt = layer["mediaType"]
    out.write("# layer %d %s %s %d\n" % (i, mt, layer["digest"], layer["size"]))
    if "zstd" in mt:
        continue
    with tarfile.open(blob(layer["digest"]), "r:*", encoding="utf-8", errors="surrogateescape") as tf:
        for e in tf:
            t = types.get(e.type, "?" + e.type.decode("latin-1"))
            x = sorted(k[len("SCHILY.xattr."):] for k in e.pax_headers if k.startswith("SCHILY.xattr."))
            dev = " dev=%d,%d" % (e.devmajor, e.devminor) if t in "cb" else ""
            out.write("L%d %s %04o %d:%d %d %d %s%s%s%s\n" % (
                i, t, e.mode, e.uid, e.gid, e.size, e.mtime, esc(e.name),
                " -> " + esc(e.linkname) if e.linkname else "", dev,
                " xattrs=" + ",".join(esc(k) for k in x) if x else ""))
PY
}
CHECKS=()
check() { # <listing> <description> <extended regexp>
  if grep -Eq -- "$3" "$1"; then CHECKS+=("ok       $2"); else CHECKS+=("MISSING  $2"); fi
}
verify_layered() {
  local f=$T/listings/layered.txt
  check "$f" "dir->file etc/apt/apt.conf.d (0644 file)" '^L2 f 0644 .* etc/apt/apt\.conf\.d$'
  check "$f" "whiteouts below the new file etc/apt/apt.conf.d" '^L2 f .* etc/apt/apt\.conf\.d/\.wh\.'
  check "$f" "file->dir fixture/replace/file2dir" '^L2 d .* fixture/replace/file2dir/?$'
  check "$f" "deletions (usr/share/doc/*)" '^L2 f .* usr/share/doc/\.wh\.'
  check "$f" "var/tmp -> /tmp" '^L3 l .* var/tmp -> /tmp$'
  check "$f" "whiteout below var/tmp after it became a symlink" '^L3 f .* var/tmp/\.wh\.\.fixture-canary$'
  check "$f" "relative dir->symlink" '^L3 l .* fixture/replace/dir2rel -> target$'
  check "$f" "hardlink within a layer" '^L3 h .* fixture/links/hl-[ab] -> fixture/links/hl-[ab]$'
  check "$f" "hardlink to a file of an earlier layer" '^L3 h .* fixture/links/(hl-to-older -> fixture/links/older|older -> fixture/links/hl-to-older)$'
  check "$f" "hardlink to a symlink" '^L3 h .* fixture/links/(hl-to-symlink -> fixture/links/chain-a|chain-a -> fixture/links/hl-to-symlink)$'
  check "$f" "dangling symlink" '^L3 l .* fixture/links/dangling -> does/not/exist$'
  check "$f" "setuid+setgid file 6755" '^L4 f 6755 .* fixture/modes/file-6755$'
  check "$f" "file mode 0000" '^L4 f 0000 .* fixture/modes/file-0000$'
  check "$f" "sticky dir 1777" '^L4 d 1777 .* fixture/modes/dir-1777/?$'
  check "$f" "owner 1234:5678" '^L4 f [0-7]+ 1234:5678 .* fixture/owners/both$'
  check "$f" "group-only owner 0:5678" '^L4 f [0-7]+ 0:5678 .* fixture/owners/group-only$'
  check "$f" "char device 1,3 mode 0666" '^L4 c 0666 .* fixture/dev/null dev=1,3$'
  check "$f" "block device 7,0 mode 0604" '^L4 b 0604 .* fixture/dev/loop0 dev=7,0$'
  check "$f" "FIFO 0600" '^L4 p 0600 .* fixture/dev/fifo-0600$'
  check "$f" "FIFO 0666" '^L4 p 0666 .* fixture/dev/fifo-0666$'
  check "$f" "user xattrs on a file (text + binary value)" '^L5 f .* fixture/xattrs/file xattrs=user\.binary,user\.fixture$'
  check "$f" "user xattr on a directory" '^L5 d .* fixture/xattrs/dir/? xattrs=user\.fixture$'
  check "$f" "security.capability (setcap)" '^L5 f .* fixture/xattrs/env-netraw xattrs=security\.capability$'
  check "$f" "255-byte name" "^L6 f .* fixture/names/n{255}\$"
  check "$f" "path longer than 4000 bytes" '^L6 f .* fixture/names/long/.{3970,}$'
  check "$f" "non-UTF-8 names" '^L6 f .* fixture/names/bytes/\\xff\\xfe$'
  check "$f" "name with a newline" '^L6 f .* fixture/names/new\\x0aline$'
  check "$f" "re-created after deletion" '^L6 f .* fixture/recreate/file$'
  check "$f" "mtime 1970 / 2100" '^L6 f [0-7]+ 0:0 5 4102444800 fixture/files/mtime-2100$'
  check "$f" "259-byte whiteout name" "^L7 f .* fixture/names/\\.wh\\.m{255}\$"
}
verify_buildah() {
  grep -Eq '^L1 f .*usr/share/doc/\.wh\.\.wh\.\.opq$' "$T/listings/buildah.txt" ||
    die "buildah produced no opaque whiteout for usr/share/doc (see $T/listings/buildah.txt)"
}

# --- 4. conversions, 5. references ---------------------------------------
IMAGES=(minbase layered buildah)
declare -A SOURCES FAILED
try() { # <image> <kind> <source-ref> <command...>
  local out
  if out=$("${@:4}" 2>&1); then
    SOURCES[$1.$2]=$3
  else
    FAILED[$1.$2]=$(tail -n 3 <<<"$out")
    log "$1: $2 failed: ${FAILED[$1.$2]}"
  fi
}
convert() {
  local i final=$DIR
  for i in "${IMAGES[@]}"; do
    SOURCES[$i.oci]=oci:$final/oci:$i
    try "$i" oci-archive "oci-archive:$final/$i.oci.tar" "$SKOPEO" copy -q "oci:$L:$i" "oci-archive:$T/$i.oci.tar"
    try "$i" docker-archive "docker-archive:$final/$i.docker.tar" \
      "$SKOPEO" copy -q "oci:$L:$i" "docker-archive:$T/$i.docker.tar:localhost/fixture-$i:latest"
    try "$i" dir-v2s2 "dir:$final/$i.dir" "$SKOPEO" copy -q --format v2s2 "oci:$L:$i" "dir:$T/$i.dir"
    try "$i" oci-zstd "oci:$final/oci-zstd:$i" \
      "$SKOPEO22" copy -q --dest-compress-format zstd --dest-compress "oci:$L:$i" "oci:$T/oci-zstd:$i"
    if [[ -n ${SOURCES[$i.oci-zstd]:-} ]] &&
       "$SKOPEO" inspect --raw "oci:$T/oci-zstd:$i" | python3 -c '
import json, sys
sys.exit(any(l["mediaType"] != "application/vnd.oci.image.layer.v1.tar+zstd" for l in json.load(sys.stdin)["layers"]))'; then :
    elif [[ -n ${SOURCES[$i.oci-zstd]:-} ]]; then
      unset "SOURCES[$i.oci-zstd]"; FAILED[$i.oci-zstd]="layers are not application/vnd.oci.image.layer.v1.tar+zstd"
      log "$i: oci-zstd: ${FAILED[$i.oci-zstd]}"
    fi
  done
}
references() {
  local i
  for i in "${IMAGES[@]}"; do umoci unpack --image "$L:$i" "$T/ref/$i"; done
}
listings() {
  local i
  for i in "${IMAGES[@]}"; do list_layers "$L" "$i" >"$T/listings/$i.txt"; done
}

write_json() {
  local seconds=$1
  {
    for i in "${IMAGES[@]}"; do
      printf '%s\t%s\t%s\n' image "$i" "$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["layers"]))' \
        < <("$SKOPEO" inspect --raw "oci:$L:$i"))"
      for k in oci oci-archive docker-archive dir-v2s2 oci-zstd; do
        [[ -z ${SOURCES[$i.$k]:-} ]] || printf 'source\t%s\t%s\t%s\n' "$i" "$k" "${SOURCES[$i.$k]}"
        [[ -z ${FAILED[$i.$k]:-} ]] || printf 'failed\t%s\t%s\t%s\n' "$i" "$k" "$(tr '\t\n' '  ' <<<"${FAILED[$i.$k]}")"
      done
    done
  } | python3 -c '
import json, sys, datetime
key, dir, seconds = sys.argv[1:4]
images = {}
for line in sys.stdin.read().splitlines():
    f = line.split("\t")
    if f[0] == "image":
        images[f[1]] = {"name": f[1], "layers": int(f[2]), "reference": dir + "/ref/" + f[1] + "/rootfs", "sources": {}, "failed": {}}
    else:
        images[f[1]]["sources" if f[0] == "source" else "failed"][f[2]] = f[3]
json.dump({"key": key, "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "buildSeconds": int(seconds), "images": list(images.values())}, sys.stdout, indent=2)
print()' "$KEY" "$DIR" "$seconds" >"$T/fixtures.json"
}

log "building $DIR"
timed "debootstrap" debootstrap_minbase
timed "umoci minbase" umoci_minbase
timed "umoci layered" build_layered
timed "buildah" build_buildah
timed "listings" listings
verify_buildah
verify_layered
printf '%s\n' "${CHECKS[@]}" >"$T/listings/layered-checks.txt"
grep '^MISSING' "$T/listings/layered-checks.txt" | sed 's/^/real-images: layered: /' >&2 || true
timed "skopeo conversions" convert
timed "umoci references" references
if [[ -e $T/ref/layered/rootfs/fixture/replace/target-trap/keep ]]; then
  echo "note     reference keeps fixture/replace/target-trap/keep" >>"$T/listings/layered-checks.txt"
else
  echo "note     reference lacks fixture/replace/target-trap/keep: umoci unpack applied the whiteout" \
    "fixture/replace/dir2rel-trap/.wh.keep through the new symlink (the OCI spec keeps it)" >>"$T/listings/layered-checks.txt"
fi
[[ $(find "$ROOTFS" | wc -l) == $(find "$T/ref/minbase/rootfs" | wc -l) ]] ||
  die "ref/minbase/rootfs and the debootstrap tree differ in size"
remove_tree "$W"
write_json "$((($(date +%s%N) - START) / 1000000000))"

# Publish atomically, then drop older keys.
remove_tree "$DIR"
mv "$T" "$DIR"
trap - EXIT
for old in "$OUT"/*/; do
  old=${old%/}
  [[ $old == "$DIR" ]] || remove_tree "$old"
done
log "total $(printf '%.1f' "$((($(date +%s%N) - START) / 1000000))e-3")s"
echo "$DIR"
