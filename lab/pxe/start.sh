#!/usr/bin/env bash
# The provisioning network's boot services for Ironic's `ipxe` (and `pxe`) boot interface, as a
# standalone (bifrost-style) operator runs them next to Ironic, from Debian packages:
#   - dnsmasq: DHCPv4 on one interface, and TFTP from Ironic's [pxe]tftp_root. iPXE clients
#     (DHCP option 175, which qemu's iPXE ROM sends) get the URL of Ironic's boot.ipxe; other
#     PXE firmware gets an iPXE binary over TFTP (undionly.kpxe / snponly.efi, which the operator
#     copies into tftp_root from Debian's `ipxe` package) and comes back as an iPXE client.
#   - busybox httpd (busybox-static): serves Ironic's [deploy]http_root at [deploy]http_url:
#     boot.ipxe, the per-node iPXE configs (pxelinux.cfg/MAC -> NODE/config) and the deploy
#     kernel and ramdisk Ironic caches there.
# Ironic keeps dhcp_provider = none: these answers are static, and Ironic decides what a node
# boots only through the files it writes (see docs/real-boot.md).
#
#   start.sh STATE_DIR        (run inside the network namespace that owns PXE_INTERFACE)
#   stop.sh STATE_DIR
#
# Environment:
#   PXE_INTERFACE=br0           the interface dnsmasq answers on (bind-interfaces)
#   PXE_HOST_IP=192.0.2.1       this host's address there (HTTP listens on it)
#   PXE_RANGE=192.0.2.100,192.0.2.199   the DHCP pool
#   PXE_HTTP_PORT=8080          the HTTP port: [deploy]http_url = http://PXE_HOST_IP:PXE_HTTP_PORT
#   PXE_HTTP_ROOT=dir           Ironic's [deploy]http_root
#   PXE_TFTP_ROOT=dir           Ironic's [pxe]tftp_root
# Writes STATE_DIR/{dnsmasq.conf,dnsmasq.log,dnsmasq.leases,dnsmasq.pid,httpd.pid,httpd.log}.
set -euo pipefail
state=${1:?usage: start.sh STATE_DIR}
iface=${PXE_INTERFACE:-br0}
host_ip=${PXE_HOST_IP:-192.0.2.1}
range=${PXE_RANGE:-192.0.2.100,192.0.2.199}
http_port=${PXE_HTTP_PORT:-8080}
http_root=${PXE_HTTP_ROOT:?PXE_HTTP_ROOT: Ironic\'s [deploy]http_root}
tftp_root=${PXE_TFTP_ROOT:?PXE_TFTP_ROOT: Ironic\'s [pxe]tftp_root}
mkdir -p "$state"
state=$(cd "$state" && pwd)

cat >"$state/dnsmasq.conf" <<CONF
# DHCP and TFTP only (port=0: no DNS), on $iface only.
port=0
# Stay root: Ironic's state dirs here are private (mode 0700); a packaged dnsmasq drops to
# the dnsmasq user and wants a world-readable tftp_root.
user=root
interface=$iface
bind-interfaces
dhcp-range=$range,255.255.255.0,1h
dhcp-leasefile=$state/dnsmasq.leases
dhcp-authoritative
log-dhcp
# iPXE announces itself with option 175: it gets Ironic's boot.ipxe, which chains the node's
# own config (pxelinux.cfg/MAC) that Ironic writes while the node is provisioned.
dhcp-match=set:ipxe,175
dhcp-boot=tag:ipxe,http://$host_ip:$http_port/boot.ipxe
# Firmware without iPXE: an iPXE binary over TFTP first (client-arch 7/9 = x86-64 UEFI).
dhcp-match=set:efi64,option:client-arch,7
dhcp-match=set:efi64,option:client-arch,9
dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi,,$host_ip
dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe,,$host_ip
enable-tftp
tftp-root=$tftp_root
CONF

dnsmasq -C "$state/dnsmasq.conf" --pid-file="$state/dnsmasq.pid" --log-facility="$state/dnsmasq.log"
setsid busybox httpd -f -vv -p "$host_ip:$http_port" -h "$http_root" >"$state/httpd.log" 2>&1 </dev/null &
echo $! >"$state/httpd.pid"
for _ in $(seq 1 40); do
  # Any HTTP answer (a 404 for a missing file is fine) shows the server is up.
  if curl -s -o /dev/null -m 2 "http://$host_ip:$http_port/"; then
    echo "dnsmasq (pid $(cat "$state/dnsmasq.pid")) on $iface, http://$host_ip:$http_port/ from $http_root (pid $(cat "$state/httpd.pid"))"
    exit 0
  fi
  sleep 0.25
done
echo "busybox httpd did not answer on $host_ip:$http_port" >&2
cat "$state/httpd.log" >&2
exit 1
