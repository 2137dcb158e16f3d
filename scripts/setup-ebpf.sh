#!/usr/bin/env bash
# Make bcc usable on this Debian machine: kernel headers (or the nearest cloud
# headers linked as /lib/modules/$(uname -r)/build) and a mounted tracefs.
# Idempotent; needs root. Prints what it did; exits non-zero when it could not.
set -uo pipefail
[ "$(id -u)" = 0 ] || { echo "setup-ebpf: needs root"; exit 1; }
krel=$(uname -r)
build="/lib/modules/$krel/build"
src="/lib/modules/$krel/source"
# bcc needs include/linux/kconfig.h: in the build dir, or (Debian's split packages:
# -cloud-amd64 holds the generated files, -common the sources) in the source dir.
has_kconfig() { [ -e "$build/include/linux/kconfig.h" ] || [ -e "$src/include/linux/kconfig.h" ]; }
link_common() {  # $1: the headers version, e.g. 6.1.0-56-cloud-amd64 -> ...-6.1.0-56-common
  local common
  common="/usr/src/linux-headers-$(echo "$1" | sed -E 's/-(cloud-|rt-)?(amd64|arm64)$//')-common"
  if [ -d "$common" ] && [ ! -e "$src/include/linux/kconfig.h" ]; then
    ln -sfn "$common" "$src" && echo "setup-ebpf: linked $src -> $common"
  fi
}
if [ -e "$build/include" ] && ! has_kconfig; then
  link_common "$(basename "$(readlink -f "$build")" | sed 's/^linux-headers-//')"
fi
if [ ! -e "$build/include" ]; then
  if apt-get install -y -qq "linux-headers-$krel" >/dev/null 2>&1; then
    echo "setup-ebpf: installed linux-headers-$krel"
  else
    pkg=$(apt-cache search --names-only '^linux-headers-[0-9.]+-[0-9]+-cloud-amd64$' 2>/dev/null \
          | awk '{print $1}' | sort -V | tail -n 1)
    [ -n "$pkg" ] || { echo "setup-ebpf: no kernel headers package found"; exit 1; }
    apt-get install -y -qq "$pkg" >/dev/null || { echo "setup-ebpf: could not install $pkg"; exit 1; }
    ver=${pkg#linux-headers-}
    mkdir -p "/lib/modules/$krel"
    ln -sfn "/usr/src/linux-headers-$ver" "$build"
    echo "setup-ebpf: linked $build -> /usr/src/linux-headers-$ver (nearest cloud headers)"
    has_kconfig || link_common "$ver"
  fi
fi
has_kconfig || echo "setup-ebpf: warning: include/linux/kconfig.h not found under $build or $src"
if [ ! -e /sys/kernel/tracing/events ] && [ ! -e /sys/kernel/debug/tracing/events ]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null && echo "setup-ebpf: mounted tracefs" \
    || echo "setup-ebpf: could not mount tracefs"
fi
exit 0
