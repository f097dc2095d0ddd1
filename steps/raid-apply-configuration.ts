import { existsSync } from 'node:fs';
import { Type } from '@sinclair/typebox';
import { parseBoolean } from '../src/base/booleans.ts';
import {
  createSoftwareRaid,
  deleteSoftwareRaid,
  keptVolumeNames,
  nodeBootMode,
  nodeTableType,
  parseSoftwareRaidConfig,
  wantsSoftwareRaid,
} from '../src/system/raid/index.ts';
import { defineStep } from './define.ts';

// IPA's raid.apply_configuration deploy step (deploy templates): the RAID
// config comes as an argument; the existing arrays go first unless
// delete_existing is false. The config is validated before anything is deleted.

export const step = defineStep({
  name: 'apply_configuration',
  interface: 'raid',
  priority: { deploy: 0 },
  description:
    'Deploy-time raid.create_configuration for deploy templates: applies the software RAID config given as raid_config, after deleting the existing arrays unless delete_existing is false.',
  argsinfo: {
    raid_config: { description: 'The RAID configuration to apply.', required: true, schema: Type.Record(Type.String(), Type.Unknown()) },
    delete_existing: {
      description: "Setting this to 'True' indicates to delete existing RAID configuration prior to creating the new configuration. Default value is 'True'.",
      required: false,
    },
  },
  async run(ctx, args) {
    const node = ctx.node;
    const raidConfig = args.raid_config;
    const deleteExisting = parseBoolean(args.delete_existing ?? true) ?? true;
    const nodeUuid = String(node.uuid ?? 'the node');
    const deps = { guard: ctx.guard, disks: () => ctx.disks(), progress: (m: string) => ctx.progress(m) };
    // A bad config fails here, before the existing arrays are deleted.
    if (wantsSoftwareRaid(raidConfig)) parseSoftwareRaidConfig(raidConfig, nodeUuid);
    if (deleteExisting) await deleteSoftwareRaid(deps, keptVolumeNames(node));
    const bootMode = nodeBootMode(node, existsSync('/sys/firmware/efi') ? 'uefi' : 'bios');
    return createSoftwareRaid(raidConfig, deps, { nodeUuid, bootMode, table: nodeTableType(node, bootMode) });
  },
});
