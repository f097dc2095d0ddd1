// Builds the real-boot lab (test/e2e/ipmi-pxe-lab.ts) with one IPMI node and an
// Ironic, powers the node on through its BMC with ipmitool so that qemu runs,
// prints one line `READY <json>` (the namespace, Ironic's state dir and the pids
// of every part), then waits for a signal. real-boot-ipmi.test.ts sends it a
// Ctrl-C (SIGINT to its process group) and checks that every part is gone: the
// teardowns the lab registered (test/helpers/teardown.ts) do it, nothing else.
//
//   node_modules/.bin/tsx test/e2e/ipmi-lab-child.ts
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startIronic } from '../helpers/ironic.ts';
import { createPxeNetwork, PXE_HOST_IP, PXE_HTTP_PORT, startIpmiNode } from './ipmi-pxe-lab.ts';

const LAN_PORT = 16409;
const net = await createPxeNetwork('sig');
const ironic = await startIronic({
  netns: net.ns.name,
  hostIp: PXE_HOST_IP,
  port: 6385,
  httpUrl: `http://${PXE_HOST_IP}:${PXE_HTTP_PORT}`,
});
await net.startPxe(ironic.stateDir);
const node = await startIpmiNode(net, {
  name: 'mab-sigint',
  mac: '52:54:00:ab:16:09',
  firmware: 'bios',
  lanPort: LAN_PORT,
  linkPort: 16419,
  diskGiB: 1,
});
await net.ns.must('ipmitool', ['-I', 'lanplus', '-C', '3', '-H', '127.0.0.1', '-p', String(LAN_PORT), '-U', 'admin', '-P', 'secret', 'chassis', 'power', 'on']);
let qemu: number | undefined;
for (let i = 0; i < 240 && !qemu; i++) {
  qemu = node.pids().qemu;
  if (!qemu) await sleep(250);
}
if (!qemu) throw new Error('the BMC did not start qemu on "chassis power on"');
const ironicPid = Number(readFileSync(join(ironic.stateDir, 'ironic.pid'), 'utf8').trim());
console.log(
  `READY ${JSON.stringify({
    ns: net.ns.name,
    ironicStateDir: ironic.stateDir,
    pids: { ...net.pids(), ...node.pids(), ironic: ironicPid },
  })}`,
);
// Nothing left to do but wait: a timer keeps the event loop (and the process) alive
// until a signal; the lab's signal handler tears everything down and exits.
setInterval(() => {}, 1 << 30);
