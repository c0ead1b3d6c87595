#!/usr/bin/env bash
# The README's two commands on a bare Debian 12, as a new user runs them.
#
# Builds a minimal Debian 12 (bookworm) root with debootstrap once (cached), copies it, clones
# the committed tree (HEAD; uncommitted changes are not seen) into it, and runs in a chroot with
# a clean environment:
#   1. ./scripts/demo.sh   shortened to HALO_FRESH_DEMO_ARGS (default: 1 epoch on 128 volumes);
#                          it must print the final validation MAE
#   2. ./scripts/test.sh   the whole test suite
# Any failure stops the check with the command's last lines and a non-zero status. Every
# package either command needs must therefore be installed by scripts/setup.sh itself: this
# is the check that a machine with packages installed by hand cannot pass by accident.
#
# Needs root (debootstrap, chroot, mounts) and a reachable Debian mirror.
# Environment:
#   HALO_FRESH_CACHE      the cached bare root   (default /var/cache/halo/fresh-bookworm)
#   HALO_FRESH_ROOT       the throw-away copy    (default /tmp/halo-fresh-root)
#   HALO_DEBIAN_MIRROR    (default http://deb.debian.org/debian)
#   HALO_FRESH_DEMO_ARGS  overrides for the demo (default "training.epochs=1")
#   HALO_FRESH_SAMPLES    training volumes of the demo (default 128)
#   HALO_FRESH_STEPS      which commands: "demo test" (default), or one of them
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${HALO_FRESH_CACHE:-/var/cache/halo/fresh-bookworm}
root=${HALO_FRESH_ROOT:-/tmp/halo-fresh-root}
mirror=${HALO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
demo_args=${HALO_FRESH_DEMO_ARGS:-training.epochs=1}
samples=${HALO_FRESH_SAMPLES:-128}
steps=${HALO_FRESH_STEPS:-demo test}

say() { echo "check-fresh-machine: $*"; }
die() { echo "check-fresh-machine: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot and mounts); run it with sudo"
git -C "$here" diff --quiet HEAD 2>/dev/null ||
  say "note: uncommitted changes in $here are not part of the check (it clones HEAD)"

if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap on this host"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

# 1. The bare root, made once: debootstrap takes a few minutes, a copy a few seconds.
if [ ! -x "$cache/bin/bash" ]; then
  say "making a bare Debian 12 root in $cache (debootstrap --variant=minbase, a few minutes)"
  rm -rf "$cache.partial"; mkdir -p "$(dirname "$cache")"
  debootstrap --variant=minbase bookworm "$cache.partial" "$mirror" > "$cache.log" 2>&1 ||
    { tail -n 20 "$cache.log"; die "debootstrap failed (log: $cache.log)"; }
  rm -rf "$cache"; mv "$cache.partial" "$cache"
fi

unmount_all() {
  for m in dev/pts dev proc sys; do
    mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m" || true
  done
}
unmount_all
rm -rf "$root"
cp -a "$cache" "$root"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# An apt proxy the host needs is the network's, not a package: the root gets it too.
for f in /etc/apt/apt.conf.d/*proxy* /etc/apt/apt.conf.d/*Proxy*; do
  [ -f "$f" ] && cp "$f" "$root/etc/apt/apt.conf.d/"
done
# Likewise a TLS-intercepting proxy's certificate bundle, when the host tells pip to use one
# (the tests install the MLPerf compliance checker from PyPI).
pip_cert=${PIP_CERT:-$(pip3 config get global.cert 2>/dev/null || true)}
pip_env=()
if [ -n "$pip_cert" ] && [ -f "$pip_cert" ]; then
  cp "$pip_cert" "$root/etc/halo-host-ca.crt"
  pip_env=(PIP_CERT=/etc/halo-host-ca.crt)
fi
mkdir -p "$root/root"
git clone -q "$here" "$root/root/halo"
trap unmount_all EXIT
mount --bind /dev "$root/dev"; mount --bind /dev/pts "$root/dev/pts"
mount -t proc proc "$root/proc"; mount -t sysfs sys "$root/sys"

# run <name> <command>: the command in the root, in the clone, with a new user's environment.
run() {
  local name=$1 cmd=$2 log="$root.$1.log" start rc
  say "$name: $cmd"
  start=$(date +%s)
  set +e
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HALO_DEMO_SAMPLES="$samples" "${pip_env[@]}" \
    bash -c "cd /root/halo && $cmd" > "$log" 2>&1
  rc=$?
  set -e
  local took=$(( $(date +%s) - start ))
  if [ $rc -ne 0 ]; then
    tail -n 40 "$log"
    die "$name exited $rc after ${took}s (log: $log)"
  fi
  say "$name passed in $((took / 60)) min $((took % 60)) s (log: $log)"
}

for step in $steps; do
  case $step in
    demo)
      run demo "./scripts/demo.sh $demo_args"
      grep "final validation MAE" "$root.demo.log" || true
      grep -q "final validation MAE" "$root.demo.log" || die "the demo did not print a final validation MAE"
      ;;
    test)
      run test "./scripts/test.sh"
      grep -E "tests passed|tests failed" "$root.test.log" | tail -n 1
      ;;
    *) die "unknown step '$step' in HALO_FRESH_STEPS (demo, test)";;
  esac
done
say "the README's commands work on a bare Debian 12"
