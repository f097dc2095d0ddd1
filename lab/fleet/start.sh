#!/usr/bin/env bash
# Starts Ironic 21.4 (Debian's python3-ironic on the host) in its distributed shape, as operators run
# it: one ironic-api process and two ironic-conductor processes with their own host names, sharing a
# MariaDB database, talking JSON-RPC. Every process is started here, by its own pid file:
#
#   STATE_DIR/mariadb.pid       mariadbd (a private instance: datadir STATE_DIR/mysql, unix socket
#                               STATE_DIR/mysqld.sock, no TCP; never the system's instance)
#   STATE_DIR/api.pid           ironic-api (ironic.cmd.api: oslo.service's process launcher; its
#                               worker runs in the launcher's process group)
#   STATE_DIR/conductor-N.pid   ironic-conductor N (ironic.cmd.conductor, one process), N = 1, 2
#
#   start.sh STATE_DIR [API_PORT]      (API_PORT defaults to 6385) ; stop with stop.sh STATE_DIR
#
# Run it inside a network namespace of its own (the fleet test does): the conductors' host names are
# loopback addresses (127.0.0.2, 127.0.0.3), because Ironic 21.4's JSON-RPC client (ironic_lib
# json_rpc/client.py) connects to the conductor's `host` name on the one global [json_rpc]port: two
# conductors on one machine need two addresses, not two ports. Each conductor's JSON-RPC server
# listens on its own address only.
#
# Environment knobs (all optional):
#   FLEET_HOST_IP=127.0.0.1       address the API listens on (the agents' side of the lab network)
#   FLEET_RPC_PORT=8089           [json_rpc]port, shared by both conductors (see above)
#   FLEET_CONDUCTORS="127.0.0.2 127.0.0.3"   the conductors' host names (addresses), one per conductor
#   FLEET_CONDUCTOR_TIMEOUT=10    [conductor]heartbeat_timeout: seconds after a conductor's last
#                                 check-in when the others count it as dead and take its nodes over
#   FLEET_AGENT_TIMEOUT=30        [api]ramdisk_heartbeat_timeout: the agents' heartbeat period
#   FLEET_API_WORKERS=1           [api]api_workers
#   FLEET_EXTRA_CONF=file         appended to ironic.conf verbatim
# Nodes are enrolled with lab/ironic/enroll.sh (manual-management, fake power, pxe boot, direct
# deploy); fast track is on, so an agent that cleaned a node stays up for its deploy.
set -euo pipefail
state=${1:?usage: start.sh STATE_DIR [API_PORT]}
port=${2:-6385}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$state/http" "$state/tftp/master"
state=$(cd "$state" && pwd)
host_ip=${FLEET_HOST_IP:-127.0.0.1}
url_host=$host_ip; [[ $host_ip == *:* ]] && url_host="[$host_ip]"
api_url="http://$url_host:$port"
read -ra conductors <<<"${FLEET_CONDUCTORS:-127.0.0.2 127.0.0.3}"
build_dir=$(cd "$here/../.." && pwd)/build
sock=$state/mysqld.sock
# A password for the lab's own database user (the socket is the lab's only way in).
[[ -f $state/db-password ]] || head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$state/db-password"
dbpw=$(cat "$state/db-password")

cat > "$state/ironic.conf" <<CONF
[DEFAULT]
auth_strategy = noauth
debug = true
use_stderr = true
rpc_transport = json-rpc
# The API drops its copy of the hash ring this often: a dead conductor leaves it within
# heartbeat_timeout + this many seconds, and heartbeats reach the survivor.
hash_ring_reset_interval = 3
enabled_hardware_types = manual-management,fake-hardware
enabled_deploy_interfaces = direct,fake
default_deploy_interface = direct
enabled_boot_interfaces = pxe,fake
enabled_power_interfaces = fake
enabled_management_interfaces = noop,fake
enabled_inspect_interfaces = no-inspect
default_inspect_interface = no-inspect
enabled_network_interfaces = noop
enabled_vendor_interfaces = no-vendor,fake
enabled_raid_interfaces = no-raid,agent,fake
enabled_bios_interfaces = no-bios,fake
enabled_rescue_interfaces = no-rescue
[api]
host_ip = $host_ip
port = $port
api_workers = ${FLEET_API_WORKERS:-1}
ramdisk_heartbeat_timeout = ${FLEET_AGENT_TIMEOUT:-30}
[database]
connection = mysql+pymysql://ironic:$dbpw@localhost/ironic?unix_socket=$sock&charset=utf8
[json_rpc]
auth_strategy = noauth
port = ${FLEET_RPC_PORT:-8089}
[conductor]
automated_clean = true
file_url_allowed_paths = /tmp,/var/tmp,/root,/home,/srv,/opt,/work,$build_dir
heartbeat_interval = 2
heartbeat_timeout = ${FLEET_CONDUCTOR_TIMEOUT:-10}
# How soon the survivor looks for nodes a dead conductor still reserves (21.4's _check_orphan_nodes:
# it releases them and fails those in cleaning/deploying) and for timed-out waits.
check_provision_state_interval = 3
sync_power_state_interval = -1
[deploy]
fast_track = true
default_boot_mode = bios
http_url = http://127.0.0.1:1
http_root = $state/http
[pxe]
tftp_root = $state/tftp
tftp_master_path = $state/tftp/master
tftp_server = $host_ip
[dhcp]
dhcp_provider = none
[service_catalog]
endpoint_override = $api_url
CONF
[[ -n ${FLEET_EXTRA_CONF:-} ]] && cat "$FLEET_EXTRA_CONF" >> "$state/ironic.conf"
for i in "${!conductors[@]}"; do   # what differs per conductor: its name and its JSON-RPC address
  printf '[DEFAULT]\nhost = %s\n[json_rpc]\nhost_ip = %s\n' "${conductors[$i]}" "${conductors[$i]}" > "$state/conductor-$((i + 1)).conf"
done

# MariaDB: a private instance (the first start makes its datadir and the ironic database).
db() { mariadb --no-defaults --socket="$sock" -u root "$@"; }
fresh=0
if [[ ! -d $state/mysql ]]; then
  fresh=1
  mariadb-install-db --no-defaults --datadir="$state/mysql" --user=root --auth-root-authentication-method=socket \
    --skip-test-db >"$state/mariadb-install.log" 2>&1 || { tail -20 "$state/mariadb-install.log" >&2; exit 1; }
fi
setsid mariadbd --no-defaults --datadir="$state/mysql" --socket="$sock" --pid-file="$state/mysql/mariadbd.pid" \
  --skip-networking --user=root --innodb-buffer-pool-size=64M --max-connections=500 \
  --log-error="$state/mariadb.log" </dev/null >/dev/null 2>&1 &
echo $! > "$state/mariadb.pid"
for _ in $(seq 1 60); do
  db -e 'SELECT 1' >/dev/null 2>&1 && break
  kill -0 "$(cat "$state/mariadb.pid")" 2>/dev/null || { echo "mariadbd exited:" >&2; tail -20 "$state/mariadb.log" >&2; exit 1; }
  sleep 0.5
done
db -e 'SELECT 1' >/dev/null
if ((fresh)); then
  db -e "CREATE DATABASE ironic CHARACTER SET utf8mb3; CREATE USER 'ironic'@'localhost' IDENTIFIED BY '$dbpw';
         GRANT ALL PRIVILEGES ON ironic.* TO 'ironic'@'localhost';"
fi

# The Ironic services, each from the host's Ironic 21.4 with this lab's config file(s).
source "$here/ironic-cmd.sh"
((fresh)) && (ironic_cmd ironic-dbsync dbsync "$state/ironic.conf" -- create_schema >"$state/dbsync.log" 2>&1 ||
  { tail -20 "$state/dbsync.log" >&2; exit 1; })
"$here/api.sh" "$state" "$api_url" >/dev/null
echo "$api_url" > "$state/api-url"
for i in "${!conductors[@]}"; do "$here/conductor.sh" "$state" $((i + 1)); done
echo "ironic-api at $api_url (pid $(cat "$state/api.pid")), conductors ${conductors[*]}, mariadb pid $(cat "$state/mariadb.pid")"
