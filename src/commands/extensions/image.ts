import { Type } from '@sinclair/typebox';
import { log } from '../../log.ts';
import { installBootloader } from '../../system/bootloader/index.ts';
import { SafetyError, type Guard } from '../../system/safety.ts';
import type { BlockDevice } from '../../hardware/types.ts';
import type { DeployState } from '../../base/deploy-state.ts';
import { BootloaderInstallError } from '../wire-errors.ts';
import type { CommandSpec } from '../engine.ts';

// image.install_bootloader: Ironic asks for it after writing a partition
// image, or a whole-disk image in UEFI mode (agent_client.install_bootloader).

export interface ImageDeps {
  guard: Guard;
  deployState: DeployState;
  /** The disk to use when no image was written by this agent (a takeover). */
  rootDevice(): Promise<BlockDevice>;
  /** The `config` from the last lookup (enable_bios_bootloader_install, from Ironic 29.0). */
  lookupConfig(): Record<string, unknown>;
}

const Nullable = (t: ReturnType<typeof Type.String>) => Type.Optional(Type.Union([t, Type.Null()]));

const InstallParams = Type.Object(
  {
    root_uuid: Nullable(Type.String()),
    efi_system_part_uuid: Nullable(Type.String()),
    prep_boot_part_uuid: Nullable(Type.String()),
    target_boot_mode: Type.Optional(Type.Union([Type.Literal('uefi'), Type.Literal('bios'), Type.Null()])),
    ignore_bootloader_failure: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: true },
);

export function imageCommands(deps: ImageDeps): Record<string, CommandSpec> {
  return {
    install_bootloader: {
      async: true,
      params: InstallParams,
      failureClass: BootloaderInstallError,
      async run(params) {
        const device = deps.deployState.rootDevice ?? (await deps.rootDevice()).name;
        const install = () =>
          installBootloader(
            {
              device,
              rootUuid: params.root_uuid,
              efiSystemPartUuid: params.efi_system_part_uuid,
              prepBootPartUuid: params.prep_boot_part_uuid,
              targetBootMode: params.target_boot_mode,
              customKernelParams: deps.deployState.kernelParams,
              // Absent (Ironic 21.4) means allowed, as IPA's default.
              runDeployedTools: deps.lookupConfig().enable_bios_bootloader_install !== false,
            },
            deps.guard,
          );
        if (params.ignore_bootloader_failure !== true) return install();
        // The operator asked (driver_info/ignore_bootloader_failure, e.g. firmware whose NVRAM
        // refuses efibootmgr): as IPA, a failure is logged and the deploy goes on, but said in the result.
        try {
          return await install();
        } catch (err) {
          // A refusal to touch a device is not a boot loader failure: never swallowed.
          if (err instanceof SafetyError) throw err;
          log.error(
            { device, err: (err as Error).message },
            'boot loader installation failed; ignored as the conductor asked (ignore_bootloader_failure)',
          );
          return { ignoredFailure: (err as Error).message };
        }
      },
    },
  };
}
