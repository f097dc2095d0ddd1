// Boot phases of the ramdisk in a VM (issue 19, Show it 4): qemu (TCG,
// SeaBIOS) boots build/vmlinuz + build/metal-agent.initramfs for a node in
// clean wait at a real Ironic 21.4; the time from qemu's start to the first
// heartbeat the conductor records is split into:
//
//   firmware      qemu start -> guest clock 0 (SeaBIOS, loading kernel + initrd)
//   kernel        guest clock 0 -> "Run /init as init process" (incl. unpacking the initramfs)
//   init          -> "metal-agent-init: [..] starting metal-agent" (drivers, udev, DHCP started)
//   agent start   -> the agent's "API listening" (the executable loads, TLS off here)
//   heartbeat     -> the conductor's agent_last_heartbeat (lookup, then the first heartbeat)
//
// The kernel's and the init's console lines carry the guest's uptime; every
// console line is also stamped with the host time it appeared (ConsoleWatch),
// which ties guest clock 0 to the host clock (the smallest host - guest
// difference over those lines). The heartbeat time is Ironic's own timestamp.
//
//   npx tsx bench/boot-phases.ts [--memory 512] [--runs 1]
//
// Root, qemu; runs a VM and an Ironic: under flock /tmp/metal-heavy.lock.
import { parseArgs } from 'node:util';
import { bootNode, ConsoleWatch, enrollForCleaning, pollFor, startLab, type ConsoleLine } from './vm-lab.ts';

const { values } = parseArgs({ options: { memory: { type: 'string', default: '512' }, runs: { type: 'string', default: '1' } } });
const memoryMiB = Number(values.memory);
const runs = Number(values.runs);

const PHASES = ['firmware', 'kernel', 'init', 'agent start', 'first heartbeat'] as const;
type Split = Record<(typeof PHASES)[number], number> & { lookupMs: number; totalMs: number };

/** Guest uptime (s) a kernel or init console line carries, if any. */
function guestSeconds(line: ConsoleLine): number | undefined {
  const m = /^(?:metal-agent-init: )?\[\s*(\d+\.\d+)\]/.exec(line.text);
  return m ? Number(m[1]) : undefined;
}

function need(watch: ConsoleWatch, re: RegExp, what: string): ConsoleLine {
  const l = watch.first(re);
  if (!l) throw new Error(`no console line for ${what} (${re})`);
  return l;
}

async function oneBoot(run: number): Promise<Split> {
  const lab = await startLab(`bph${run}`);
  try {
    const mac = `52:54:00:b0:07:${(16 + run).toString(16)}`;
    const uuid = await enrollForCleaning(lab, mac, `boot-phases-${run}`);
    const vm = await bootNode(lab, mac, memoryMiB);
    const qemuStart = Date.now() - vm.elapsedMs();
    const watch = new ConsoleWatch(vm).start();
    try {
      // Ironic stamps agent_last_heartbeat (UTC, no zone) at each heartbeat; the first one seen is the first
      // heartbeat: the next comes seconds later (heartbeat_timeout 30 s), polled every 250 ms.
      const heartbeat = await pollFor('first heartbeat at the conductor', async () => {
        if (!vm.alive()) throw new Error(`the VM stopped:\n${(await vm.serialText()).slice(-2000)}`);
        const stamp = (await lab.ironic.node(uuid)).driver_internal_info?.agent_last_heartbeat as string | undefined;
        return stamp ? Date.parse(`${stamp}Z`) : undefined;
      }, 900_000);
      await watch.poll();
      const stamped = watch.lines.filter((l) => guestSeconds(l) !== undefined);
      const guestZero = Math.min(...stamped.map((l) => l.hostMs - guestSeconds(l)! * 1000));
      const runInit = guestSeconds(need(watch, /\] Run \/init as init process/, 'the kernel starting /init'))! * 1000;
      const agentRun = guestSeconds(need(watch, /metal-agent-init: \[[\d.]+\] starting metal-agent \(run 1\)/, 'the init starting the agent'))! * 1000;
      const listening = need(watch, /"msg":"API listening"/, 'the agent listening').hostMs;
      const lookup = need(watch, /"msg":"lookup succeeded"/, 'the lookup').hostMs;
      const split: Split = {
        firmware: guestZero - qemuStart,
        kernel: runInit,
        init: agentRun - runInit,
        'agent start': listening - (guestZero + agentRun),
        'first heartbeat': heartbeat - listening,
        lookupMs: lookup - listening,
        totalMs: heartbeat - qemuStart,
      };
      const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
      console.log(`run ${run}: ${PHASES.map((p) => `${p} ${s(split[p])}`).join(', ')}; qemu start -> first heartbeat ${s(split.totalMs)} (lookup answered ${s(split.lookupMs)} after "API listening")`);
      return split;
    } finally {
      watch.stop();
      await vm.stop();
    }
  } finally {
    await lab.stop();
  }
}

const splits: Split[] = [];
for (let i = 1; i <= runs; i++) splits.push(await oneBoot(i));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const total = median(splits.map((s) => s.totalMs));
console.log(`\nramdisk boot in qemu (TCG, SeaBIOS, ${memoryMiB} MiB, 1 vCPU) to the first heartbeat at Ironic 21.4, median of ${runs}:`);
for (const p of PHASES) {
  const ms = median(splits.map((s) => s[p]));
  console.log(`  ${p.padEnd(16)} ${(ms / 1000).toFixed(1).padStart(6)} s  ${((100 * ms) / total).toFixed(0).padStart(3)}%`);
}
console.log(`  ${'total'.padEnd(16)} ${(total / 1000).toFixed(1).padStart(6)} s`);
