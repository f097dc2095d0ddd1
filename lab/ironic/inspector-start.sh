#!/usr/bin/env bash
# Starts a real ironic-inspector 11.1 (Debian 12's python3-ironic-inspector, OpenStack 2023.1), the
# in-band inspection service Ironic 21.4 hands `baremetal node inspect` to when a node's
# inspect_interface is `inspector`. Standalone, as ONE process (ironic_inspector.cmd.all: API and
# conductor, [DEFAULT]standalone with the fake:// message transport), no auth, sqlite, no keystone,
# no PXE filter ([pxe_filter]driver=noop: Ironic's own PXE config boots the ramdisk), and the
# default processing hooks (ramdisk_error, root_disk_selection, scheduler, validate_interfaces,
# capabilities, pci_devices). Ironic manages boot and power (inspector is told manage_boot=False).
#
#   inspector-start.sh STATE_DIR PORT IRONIC_URL
#
# The ramdisk POSTs its data to http://HOST:PORT/v1/continue (ipa-inspection-callback-url).
# Ironic 21.4 refuses a loopback callback URL (_get_callback_endpoint), so the listen address is
# one the nodes reach: INSPECTOR_HOST_IP (default: this machine's first global IPv4 address).
#
# Environment knobs (all optional):
#   INSPECTOR_HOST_IP=ip        listen address
#   INSPECTOR_EXTRA_CONF=file   appended to inspector.conf verbatim (e.g. [processing]add_ports,
#                               keep_ports, processing_hooks)
# Writes STATE_DIR/inspector.conf, inspector.sqlite, inspector.log, inspector.pid, ramdisk-logs/.
# Stop with inspector-stop.sh STATE_DIR.
#
# Ironic's side (its ironic.conf, e.g. through start.sh's IRONIC_EXTRA_CONF):
#   [inspector]
#   endpoint_override = http://HOST:PORT
#   status_check_period = 5      (how often the conductor asks inspector whether it finished)
#   power_off = false            (optional)
# and the node: --inspect-interface inspector, a port with a MAC the ramdisk reports (inspector finds
# the node by its ports' MACs or its BMC address), deploy_kernel/deploy_ramdisk for the boot interface.
set -euo pipefail
state=${1:?usage: inspector-start.sh STATE_DIR PORT IRONIC_URL}
port=${2:?PORT}
ironic_url=${3:?IRONIC_URL}
host_ip=${INSPECTOR_HOST_IP:-}
if [[ -z $host_ip ]]; then
  host_ip=$(ip -4 -o addr show scope global 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}')
  [[ -n $host_ip ]] || { echo "no global IPv4 address here: set INSPECTOR_HOST_IP" >&2; exit 2; }
fi
/usr/bin/python3 -c 'import ironic_inspector' 2>/dev/null || { echo "ironic-inspector is not installed (lab/ironic/install.sh)" >&2; exit 2; }
mkdir -p "$state/ramdisk-logs"
state=$(cd "$state" && pwd)
url_host=$host_ip; [[ $host_ip == *:* ]] && url_host="[$host_ip]"
url="http://$url_host:$port"

cat > "$state/inspector.conf" <<CONF
[DEFAULT]
auth_strategy = noauth
standalone = true
transport_url = fake://
host = test-inspector
listen_address = $host_ip
listen_port = $port
debug = true
use_stderr = true
# Ironic manages boot: no delay between nodes, no timeout shorter than a slow boot.
introspection_delay = 0
timeout = 1800
[database]
connection = sqlite:///$state/inspector.sqlite
[ironic]
auth_type = none
endpoint_override = $ironic_url
[processing]
# The processed data is kept (GET /v1/introspection/NODE/data): Ironic 21.4 copies it into its own
# inventory store when the inspection finishes.
store_data = database
ramdisk_logs_dir = $state/ramdisk-logs
always_store_ramdisk_logs = true
[pxe_filter]
driver = noop
CONF
[[ -n ${INSPECTOR_EXTRA_CONF:-} ]] && cat "$INSPECTOR_EXTRA_CONF" >> "$state/inspector.conf"

py() { /usr/bin/python3 -c "import sys; sys.argv=['$1','--config-file','$state/inspector.conf']+sys.argv[1:]; m=__import__('ironic_inspector.cmd.$2', fromlist=['main']); sys.exit(m.main())" "${@:3}"; }
[[ -f $state/inspector.sqlite ]] || py ironic-inspector-dbsync dbsync upgrade >"$state/dbsync.log" 2>&1 || { cat "$state/dbsync.log" >&2; exit 1; }
setsid bash -c "$(declare -f py); state='$state'; py ironic-inspector all" >"$state/inspector.log" 2>&1 < /dev/null &
echo $! > "$state/inspector.pid"
for _ in $(seq 1 60); do
  if curl -fsS -m 2 "$url/v1" >/dev/null 2>&1; then echo "ironic-inspector API at $url (pid $(cat "$state/inspector.pid"))"; exit 0; fi
  kill -0 "$(cat "$state/inspector.pid")" 2>/dev/null || break
  sleep 1
done
echo "ironic-inspector did not come up; last log lines:" >&2; tail -20 "$state/inspector.log" >&2; exit 1
