import { Type } from '@sinclair/typebox';
import { kernelParamsArg } from '../src/system/bootloader/index.ts';
import { armKexec, prepareKexec } from '../src/system/kexec/index.ts';
import { defineStep } from './define.ts';

// The project's Ironic deploy interface `direct-kexec` (ironic-plugin/) runs
// this step itself at the end of a deploy; it can also be asked for through a
// deploy template (or `baremetal node deploy --deploy-steps`) with a priority
// between write_image (80) and tear_down_agent (40), e.g. 50. It finds the
// deployed OS's kernel, initrd and command line, stages and loads them, and
// arms the handoff: the deploy's closing standby.run_image (which direct-kexec,
// and the `agent` power interface, send) executes `kexec -e` instead of
// rebooting. A missing or unloadable kernel fails the step, and
// with it the deploy, while the agent is still there to say why.

const KernelParams = Type.Union([Type.String(), Type.Array(Type.String()), Type.Null()]);

export const step = defineStep({
  name: 'kexec_handoff',
  priority: { deploy: 0 },
  description:
    "Finds the deployed OS's kernel, initrd and command line (grub.cfg default entry, BLS entries, /boot/vmlinuz links), " +
      "stages and loads them with kexec, and makes the deploy's final standby.run_image a kexec into the deployed OS " +
      'instead of a reboot (dry run outside a ramdisk).',
  appliesTo: { tools: ['kexec'], note: 'ends the deploy without a reboot when Ironic closes it with standby.run_image: the direct-kexec deploy interface (ironic-plugin/) or the agent power interface' },
  argsinfo: {
    kernel_params: {
      description: 'Extra kernel parameters for the kexec\'d kernel (string or list), added to the entry\'s command line',
      required: false,
      schema: KernelParams,
    },
  },
  async run(ctx, args) {
    const extra = kernelParamsArg(args.kernel_params);
    ctx.progress('kexec_handoff: looking for the deployed kernel');
    const prepared = await prepareKexec(
      { guard: ctx.guard, deployState: ctx.deployState, rootDevice: async () => (await ctx.rootDevice()).name },
      extra,
    );
    armKexec(ctx.deployState, prepared);
    ctx.progress(`kexec_handoff: ${prepared.real ? 'loaded' : 'dry run,'} ${prepared.plan.kernel.path}; standby.run_image will hand off`);
    return { ...prepared.plan, armed: true };
  },
});
