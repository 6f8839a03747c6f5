#!/usr/bin/env bash
# Idempotent set-up of the "kernel matrix": the tools to boot Debian kernels under
# QEMU (software emulation) with virtme-ng, and the kernels themselves.
#
#  - Debian packages qemu-system-x86 busybox-static kmod udev (only if missing)
#  - virtme-ng (pinned) into the project's venv (only if missing / other version)
#  - for each kernel series (default: 5.10, 6.1, 6.12, sid) the Debian image, headers
#    (arch + common) and kbuild packages, fetched with `apt-get download` and
#    unpacked with `dpkg -x` (nothing is installed) into
#      $IPFT_VM_CACHE/<release>/root      (default /var/cache/ipft-tui/vm-kernels)
#    plus a merged headers tree $IPFT_VM_CACHE/<release>/headers that bcc can use
#    (BCC_KERNEL_SOURCE, and the unpacked modules dir's build/source links).
#
# Prints one line per kernel: "<series> <release> <vmlinuz path>".
# Usage: scripts/vm_kernels.sh [SERIES...]      e.g. scripts/vm_kernels.sh 6.12
# Offline re-runs reuse what is in the cache (the newest unpacked release of each
# series); pin a release with IPFT_VM_RELEASE_6_1=6.1.0-56-amd64 and the like.
# 6.1 and 6.12 come from the machine's (bookworm) apt sources; 5.10 (bullseye-security)
# and sid (the newest Debian kernel) from sources lists of our own, kept with their
# package lists in $IPFT_VM_CACHE/apt/<suite>: the machine's apt set-up is not touched.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

CACHE=${IPFT_VM_CACHE:-/var/cache/ipft-tui/vm-kernels}
VENV=${IPFT_VENV:-$repo/.venv}
VNG_VERSION=1.42
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
log() { echo "vm_kernels: $*" >&2; }

# ---- tooling -----------------------------------------------------------------
apt_updated=0
apt_update() {
  if [ "$apt_updated" = 0 ]; then $SUDO apt-get update -qq >&2; apt_updated=1; fi
}
need=()
for p in qemu-system-x86 busybox-static kmod udev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  apt_update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${need[@]}" >&2
fi
if [ ! -x "$VENV/bin/python" ]; then
  log "no venv at $VENV: run scripts/setup.sh first"; exit 1
fi
have_vng=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("virtme-ng"))' \
           2>/dev/null || true)
if [ "$have_vng" != "$VNG_VERSION" ] || [ ! -x "$VENV/bin/vng" ]; then
  log "installing virtme-ng==$VNG_VERSION into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "virtme-ng==$VNG_VERSION" >&2
fi

# ---- kernels -----------------------------------------------------------------
mkdir -p "$CACHE/debs"

# Series served by a Debian suite other than the machine's: that suite's apt source.
own_source() {
  case "$1" in
    5.10) echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bullseye-security main" ;;
    sid) echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main" ;;
  esac
}

# apt-get/apt-cache with the series' own sources list and state (none: the machine's).
apt_for() {
  local series=$1 tool=$2 dir; shift 2
  if [ -z "$(own_source "$series")" ]; then $tool "$@"; return; fi
  dir="$CACHE/apt/$series"
  $tool -o Dir::Etc::sourcelist="$dir/sources.list" -o Dir::Etc::sourceparts=- \
        -o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache" \
        -o Dir::State::status="$dir/status" "$@"
}

apt_update_for() {
  local series=$1 dir
  if [ -z "$(own_source "$series")" ]; then apt_update; return; fi
  dir="$CACHE/apt/$series"
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
  own_source "$series" > "$dir/sources.list"
  : > "$dir/status"
  log "apt update of the $series sources ($dir)"
  apt_for "$series" apt-get update -qq >&2
}

# The release (e.g. 6.1.0-56-amd64) a series' meta-package points at, from apt.
resolve_release() {
  local series=$1 meta dep
  case "$series" in
    6.1|5.10|sid) meta=linux-image-amd64 ;;  # the suite's default kernel
    *) meta="linux-image-$series-amd64" ;;  # e.g. linux-image-6.12-amd64 (bookworm-security)
  esac
  dep=$(apt_for "$series" apt-cache depends "$meta" 2>/dev/null \
        | sed -n 's/^ *Depends: linux-image-\(.*\)$/\1/p' | grep -v -- '-unsigned$' | head -1)
  case "$series:$dep" in "$series:$series".*|sid:[0-9]*) echo "$dep" ;; *) return 1 ;; esac
}

# The newest release of a series already unpacked in the cache (offline fallback).
cached_release() {
  local series=$1
  if [ "$series" = sid ]; then cat "$CACHE/sid.release" 2>/dev/null; return; fi
  (cd "$CACHE" && ls -d "$series".*/.complete 2>/dev/null | sed 's#/.complete##' | sort -V | tail -1)
}

fetch_debs() {  # apt-get download into $CACHE/debs unless the .deb is there already
  local series=$1 p; shift
  for p in "$@"; do
    if ! ls "$CACHE/debs/${p}_"*.deb >/dev/null 2>&1; then
      log "downloading $p"
      (cd "$CACHE/debs" && apt_for "$series" apt-get download -q -o APT::Sandbox::User=root "$p" >&2)
    fi
  done
}

prepare() {
  local series=$1 var release dir root common kbuild_pkg kbuild p hdr
  var="IPFT_VM_RELEASE_${series//./_}"
  release=${!var:-}
  if [ -z "$release" ]; then
    release=$(resolve_release "$series" || true)
    if [ -z "$release" ]; then
      apt_update_for "$series" || true
      release=$(resolve_release "$series" || true)
    fi
    if [ -z "$release" ]; then
      release=$(cached_release "$series")
      [ -n "$release" ] || { log "no Debian kernel for series $series in the apt sources"; return 1; }
      log "apt does not know series $series; reusing cached $release"
    fi
  fi
  dir="$CACHE/$release"
  root="$dir/root"
  if [ ! -f "$dir/.complete" ]; then
    # linux-headers-6.1.0-56-amd64 -> -common 6.1.0-56-common, kbuild linux-kbuild-6.1
    # linux-headers-6.12.117+deb12-amd64 -> 6.12.117+deb12-common, linux-kbuild-6.12.117+deb12
    common="linux-headers-${release%-amd64}-common"
    kbuild_pkg=$(apt_for "$series" apt-cache depends "linux-headers-$release" 2>/dev/null \
                 | sed -n 's/^ *Depends: \(linux-kbuild-.*\)$/\1/p' | head -1)
    [ -n "$kbuild_pkg" ] || { log "cannot find the kbuild package of linux-headers-$release"; return 1; }
    # Newer Debian kernels (sid) split the image package: the kernel itself, its
    # modules and their lists (modules.builtin, System.map) are in linux-binary-*,
    # linux-modules-* and linux-base-*.
    split=$(apt_for "$series" apt-cache depends "linux-image-$release" 2>/dev/null \
            | sed -n 's/^ *Depends: \(linux-\(base\|binary\|modules\)-.*\)$/\1/p' | grep -F -- "-$release" || true)
    # shellcheck disable=SC2086 # one package name per word
    fetch_debs "$series" "linux-image-$release" $split "linux-headers-$release" "$common" "$kbuild_pkg"
    rm -rf "$dir"; mkdir -p "$root"
    # shellcheck disable=SC2086
    for p in "linux-image-$release" $split "linux-headers-$release" "$common" "$kbuild_pkg"; do
      log "unpacking $p"
      dpkg -x "$(ls "$CACHE/debs/${p}_"*.deb | sort -V | tail -1)" "$root"
    done
    # Merged-/usr packages (sid) ship /usr/lib/modules/<release>/vmlinuz: give them the
    # /lib/modules and /boot/vmlinuz-<release> layout the older ones have.
    if [ ! -e "$root/lib" ] && [ -d "$root/usr/lib/modules" ]; then ln -s usr/lib "$root/lib"; fi
    if [ ! -f "$root/boot/vmlinuz-$release" ] && [ -f "$root/usr/lib/modules/$release/vmlinuz" ]; then
      mkdir -p "$root/boot"; cp "$root/usr/lib/modules/$release/vmlinuz" "$root/boot/vmlinuz-$release"
    fi
    # A merged headers tree (arch + common, made of symlinks) for bcc. The Debian
    # arch tree's Makefile and build link point at absolute /usr/src paths, which
    # are not these, so bcc gets this tree instead.
    hdr="$root/usr/src/linux-headers-$release"
    "$VENV/bin/python" - "$hdr" "$root/usr/src/$common" "$dir/headers" <<'EOF'
import sys
sys.path.insert(0, ".")
from ipft_tui.kernel.headers import merge_trees
merge_trees([sys.argv[1], sys.argv[2]], sys.argv[3])
EOF
    # the arch tree's 'scripts' & 'tools' links are relative (../../lib/linux-kbuild-*):
    # merge_trees resolved them inside $root already. Point the modules dir at it too.
    kbuild=$(ls -d "$root"/usr/lib/linux-kbuild-* | head -1)
    [ -e "$dir/headers/scripts" ] || ln -sfn "$kbuild/scripts" "$dir/headers/scripts"
    ln -sfn "$dir/headers" "$root/lib/modules/$release/build"
    ln -sfn "$dir/headers" "$root/lib/modules/$release/source"
    # .debs ship no modules.dep (the postinst makes it); virtme-ng needs it.
    depmod -a -b "$root" "$release"
    test -f "$dir/headers/include/generated/autoconf.h" || { log "$release: incomplete headers"; return 1; }
    test -f "$root/boot/vmlinuz-$release" || { log "$release: no vmlinuz"; return 1; }
    echo "$release" > "$dir/.complete"
  fi
  if [ "$series" = sid ]; then echo "$release" > "$CACHE/sid.release"; fi
  echo "$series $release $root/boot/vmlinuz-$release"
}

series_list=("$@")
[ "${#series_list[@]}" -gt 0 ] || series_list=(5.10 6.1 6.12 sid)
for s in "${series_list[@]}"; do prepare "$s"; done
