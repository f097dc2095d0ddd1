#!/usr/bin/env bash
# Enrolls one node with a port, and takes it to 'available' through automated cleaning,
# which waits (state 'clean wait') until an agent looks the node up and heartbeats.
#
#   lab/ironic/enroll.sh API_URL MAC [NAME]     prints the node's UUID
#
# Environment knobs (all optional):
#   NODE_BOOT=pxe             pxe or ipxe: Ironic writes the node's PXE/iPXE config with the kernel
#                             parameters it wants the ramdisk to get (ipa-api-url, request id, ...)
#   DEPLOY_KERNEL, DEPLOY_RAMDISK   files Ironic puts into that config (placeholders if unset)
#   ROOT_DEVICE='{"name": "/dev/loop3"}'   root device hints (properties/root_device)
#   PROVIDE=false             stop at 'manageable' instead of starting automated cleaning
#   NODE_DRIVER=manual-management-kexec, NODE_DEPLOY=direct-kexec   hardware type and deploy
#                             interface (defaults manual-management, direct; ironic-plugin/README.md)
#
# Power is `fake`: Ironic only records power states, so nothing reboots a node; an agent that
# outlives a phase keeps a token that Ironic wiped (without fast track), and a real node would have
# been power-cycled into a fresh ramdisk there. Ironic's `agent` power interface (reboot =
# standby.run_image) validates only while an agent heartbeats: with IRONIC_FAST_TRACK=true, once
# the node is available, `baremetal node set NODE --power-interface agent`.
#
# has_dedicated_power_supply: Ironic 29.0.5 (Debian 13) makes a node its own parent_node on every
# PATCH (api utils authorize_node_link_patch returns the node itself when the patch does not touch
# parent_node); at power off it then waits on its own lock (ChildNodeLocked). Declaring the node
# independently powered keeps it out of its own child list. Ignored by 21.4.
#
# Then, for a deploy once the node is 'available':
#   baremetal node set NODE --instance-info image_source=http://HOST/img.raw \
#       --instance-info image_os_hash_algo=sha256 --instance-info image_os_hash_value=HEX \
#       --instance-info image_disk_format=raw
#   baremetal node deploy NODE --config-drive '{"meta_data": {"hostname": "n0"}}'
set -euo pipefail
export OS_ENDPOINT=${1:?usage: lab/ironic/enroll.sh API_URL MAC [NAME]} OS_AUTH_TYPE=none OS_BAREMETAL_API_VERSION=${OS_BAREMETAL_API_VERSION:-1.78}
mac=${2:?MAC}
name=${3:-node-${mac//:/}}
kernel=${DEPLOY_KERNEL:-} ramdisk=${DEPLOY_RAMDISK:-}
if [[ -z $kernel || -z $ramdisk ]]; then
  ph=${TMPDIR:-/tmp}/ironic-deploy-placeholder; mkdir -p "$ph"
  echo placeholder > "$ph/kernel"; echo placeholder > "$ph/ramdisk"
  kernel=${kernel:-$ph/kernel} ramdisk=${ramdisk:-$ph/ramdisk}
fi
uuid=$(baremetal node create --driver "${NODE_DRIVER:-manual-management}" --management-interface noop \
  --power-interface fake --boot-interface "${NODE_BOOT:-pxe}" --deploy-interface "${NODE_DEPLOY:-direct}" \
  --driver-info deploy_kernel="file://$(realpath "$kernel")" --driver-info deploy_ramdisk="file://$(realpath "$ramdisk")" \
  --driver-info has_dedicated_power_supply=true \
  ${ROOT_DEVICE:+--property root_device="$ROOT_DEVICE"} \
  --name "$name" -f value -c uuid)
baremetal port create "$mac" --node "$uuid" >/dev/null
baremetal node manage "$uuid" --wait 60 >/dev/null
[[ ${PROVIDE:-true} == true ]] && baremetal node provide "$uuid" >/dev/null
echo "$uuid"
