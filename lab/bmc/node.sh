#!/usr/bin/env bash
# One qemu "bare-metal node" behind a real IPMI 2.0 LAN BMC: OpenIPMI's ipmi_sim (Debian
# `openipmi`) in front of qemu's `ipmi-bmc-extern` device. From `start` on, only IPMI powers the
# VM: `chassis power on` runs the VM script, `power off` stops it, `power status` is "on" exactly
# while that qemu lives. Ironic drives it with its `ipmi` hardware type (ipmitool).
#
#   node.sh start STATE_DIR     (settings from the environment, below; run it in the namespace
#                                that holds the node's tap: ipmi_sim starts qemu there)
#   node.sh stop STATE_DIR      ends ipmi_sim and the qemu it started (their pids only)
#
# Environment for start:
#   NODE_NAME         a name for logs                       NODE_MAC      the NIC's MAC
#   NODE_TAP          an existing tap (on the PXE bridge)   NODE_DISK     a raw disk file (kept)
#   NODE_FIRMWARE     uefi (OVMF) or bios (SeaBIOS)         NODE_MEMORY   MiB (512)
#   BMC_LAN_PORT      ipmi_sim's RMCP+ UDP port on BMC_ADDR (127.0.0.1): unique per node
#   BMC_LINK_PORT     TCP port between ipmi_sim and qemu's ipmi-bmc-extern: unique per node
#   BMC_USER/BMC_PASSWORD   the admin user (admin / secret)
#
# Writes STATE_DIR/{lan.conf,bmc.emu,vm.sh}; the serial console is appended to
# STATE_DIR/console.log across power cycles, and every power-on first appends a line
# "=== bmc: power on N" (N counts up), so a reader can tell which boot printed what.
#
# What ipmi_sim cannot do, and how the node copes (checked against openipmi 2.0.33):
# - `chassis bootdev` is refused ("Invalid data field"): enroll with Ironic's `noop` management;
#   the VM's boot order is fixed, network first, then disk (bootindex 1 and 2). Ironic's
#   [pxe]enable_netboot_fallback then keeps an iPXE config that boots the disk after a deploy.
# - ipmitool's cipher-suite probe gets no answer (5 s per call): set ipmi_cipher_suite=3.
# - no -no-reboot for qemu: a BMC reset would end the process, which reads as "off".
set -euo pipefail
cmd=${1:?usage: node.sh start|stop STATE_DIR}
state=${2:?usage: node.sh start|stop STATE_DIR}

# Only a number above 1 is ever signalled: "kill -1" or an empty pid would hit everything.
stop_pid() {
  local pid=$1
  [[ $pid =~ ^[0-9]+$ ]] && ((pid > 1)) || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  kill -KILL "$pid" 2>/dev/null || true
}

if [[ $cmd == stop ]]; then
  [[ -d $state ]] || exit 0
  # ipmi_sim first, so that nothing powers the VM on again behind our back.
  [[ -f $state/ipmi_sim.pid ]] && stop_pid "$(cat "$state/ipmi_sim.pid")"
  [[ -f $state/qemu.pid ]] && stop_pid "$(cat "$state/qemu.pid")"
  rm -f "$state/ipmi_sim.pid" "$state/qemu.pid"
  exit 0
fi
[[ $cmd == start ]] || { echo "node.sh: unknown command $cmd" >&2; exit 2; }

: "${NODE_NAME:?}" "${NODE_MAC:?}" "${NODE_TAP:?}" "${NODE_DISK:?}" "${NODE_FIRMWARE:?}"
: "${BMC_LAN_PORT:?}" "${BMC_LINK_PORT:?}"
addr=${BMC_ADDR:-127.0.0.1}
mkdir -p "$state"
state=$(cd "$state" && pwd)
disk=$(realpath "$NODE_DISK")

cat >"$state/bmc.emu" <<EOF
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
EOF

# poweroff_wait: seconds between asking the VM to shut down (an ACPI request our ramdisk
# ignores) and SIGTERM; a hard "power off" should not wait long.
cat >"$state/lan.conf" <<EOF
name "$NODE_NAME"
set_working_mc 0x20
  startlan 1
    addr $addr $BMC_LAN_PORT
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid $(printf '%032x' "$BMC_LAN_PORT")
  endlan
  serial 15 127.0.0.1 $BMC_LINK_PORT codec VM
  startcmd "$state/vm.sh"
  startnow false
  poweroff_wait 3
  kill_wait 5
  user 2 true  "${BMC_USER:-admin}" "${BMC_PASSWORD:-secret}" admin 10 none md2 md5 straight
EOF

firmware=()
if [[ $NODE_FIRMWARE == uefi ]]; then
  [[ -f $state/OVMF_VARS.fd ]] || cp /usr/share/OVMF/OVMF_VARS_4M.fd "$state/OVMF_VARS.fd"
  # The NVRAM file persists across power cycles, as a real machine's does. EDK2's own PXE
  # client is switched off: qemu's iPXE ROM is the network boot, as with SeaBIOS.
  firmware=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
    -drive "if=pflash,format=raw,unit=1,file=$state/OVMF_VARS.fd"
    -fw_cfg name=opt/org.tianocore/IPv4PXESupport,string=n
    -fw_cfg name=opt/org.tianocore/IPv6PXESupport,string=n)
fi

# graphics=off: SeaBIOS (and the iPXE ROM through it) print on the serial port too.
# tb-size: see TCG_TB_MIB in test/e2e/qemu.ts (a small translation cache keeps TCG fast after
# the boot loader install). qemu's stdout/stderr go to qemu.log.
{
  echo '#!/bin/bash'
  echo "# Started by ipmi_sim on 'chassis power on' (lab/bmc/node.sh)."
  echo "cd $(printf %q "$state")"
  echo 'n=$(( $(cat power-ons 2>/dev/null || echo 0) + 1 )); echo $n > power-ons'
  echo 'echo "=== bmc: power on $n" >> console.log'
  printf 'exec qemu-system-x86_64 -name %q -nodefaults -display none -machine q35,graphics=off' "$NODE_NAME"
  printf ' -accel tcg,tb-size=256 -cpu max -m %q -smp 1' "${NODE_MEMORY:-512}"
  printf ' %q' "${firmware[@]}" \
    -chardev "file,id=ser0,path=$state/console.log,append=on" -serial chardev:ser0 \
    -chardev "socket,id=ipmi0,host=127.0.0.1,port=$BMC_LINK_PORT,reconnect=10" \
    -device ipmi-bmc-extern,id=bmc0,chardev=ipmi0 -device isa-ipmi-kcs,bmc=bmc0 \
    -netdev "tap,id=n0,ifname=$NODE_TAP,script=no,downscript=no" \
    -device "virtio-net-pci,netdev=n0,mac=$NODE_MAC,bootindex=1" \
    -drive "file=$disk,format=raw,if=none,id=d0,cache=unsafe,discard=unmap" \
    -device "virtio-blk-pci,drive=d0,serial=${NODE_NAME}-disk,bootindex=2" \
    -device virtio-rng-pci -pidfile "$state/qemu.pid"
  echo ' >>qemu.log 2>&1 </dev/null'
} >"$state/vm.sh"
chmod +x "$state/vm.sh"

: >>"$state/console.log"
setsid ipmi_sim -c "$state/lan.conf" -f "$state/bmc.emu" -s "$state" -n >"$state/ipmi_sim.log" 2>&1 </dev/null &
echo $! >"$state/ipmi_sim.pid"
# Ready when the LAN port answers an authenticated request.
for _ in $(seq 1 40); do
  if ipmitool -I lanplus -C 3 -H "$addr" -p "$BMC_LAN_PORT" -U "${BMC_USER:-admin}" -P "${BMC_PASSWORD:-secret}" \
    -N 1 -R 1 chassis power status >/dev/null 2>&1; then
    echo "bmc for $NODE_NAME at $addr:$BMC_LAN_PORT (ipmi_sim pid $(cat "$state/ipmi_sim.pid"))"
    exit 0
  fi
  kill -0 "$(cat "$state/ipmi_sim.pid")" 2>/dev/null || break
  sleep 0.5
done
echo "ipmi_sim for $NODE_NAME did not answer; its log:" >&2
cat "$state/ipmi_sim.log" >&2
exit 1
