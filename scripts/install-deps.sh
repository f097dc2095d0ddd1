#!/usr/bin/env bash
# Installs everything the tests, the benchmarks and the demo need on a fresh
# Debian 12 machine (as root), then the npm packages. Idempotent and quick when
# all is present: dpkg is asked first, apt only for what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(
  # block devices and images
  util-linux fdisk gdisk parted udev dosfstools e2fsprogs qemu-utils qemu-block-extra zstd xz-utils
  hdparm nvme-cli dmidecode kexec-tools efibootmgr mount
  # config drives and ESPs read and written without mounting; ephemeral filesystems
  mtools genisoimage xfsprogs
  # test fixtures: a busybox chroot for boot-loader tests, udhcpd for VM networks
  busybox-static
  # network labs (namespaces, SLAAC)
  iproute2 radvd
  # the demo's guest image (lab/guest-image/build.sh); socat for its guest shell (make demo KEEP=1)
  debootstrap socat
  # Ironic 21.4 and its CLI (the real conductor the integration tests drive)
  python3-ironic python3-ironicclient
  # ironic-inspector 11.1: 21.4's in-band inspection (the library only: the `ironic-inspector`
  # package adds dbconfig and systemd units; lab/ironic/inspector-start.sh runs it)
  python3-ironic-inspector
  # the fleet lab (lab/fleet, issue 20): Ironic's API and two conductors on a private MariaDB
  # instance (the package's own system instance is never started), through PyMySQL
  mariadb-server python3-pymysql
  # the fleet bench's faults on the agents' links, as this kernel has no sch_netem: packet loss
  # (nft numgen) and delay (iptables' NFQUEUE, held by lab/fleet/delay.py; nft has no queue here)
  nftables iptables
  # real boot (issue 16): a BMC per VM (ipmi_sim + ipmitool; sushy for Ironic's redfish driver),
  # DHCP/TFTP, qemu's iPXE ROMs, UEFI firmware, and the boot loaders ISOs and ESPs are built from
  qemu-system-x86 openipmi ipmitool python3-sushy dnsmasq ipxe-qemu ovmf
  xorriso isolinux syslinux-common grub-efi-amd64-bin grub-pc-bin
  # tooling; sshpass: the rescue e2e logs in with the rescue password (test/e2e/real-boot-redfish)
  curl openssl ca-certificates sshpass
)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi
