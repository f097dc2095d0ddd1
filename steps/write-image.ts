import { Type } from '@sinclair/typebox';
import { ChecksumNotAllowedError } from '../src/base/errors.ts';
import * as io from '../src/io/index.ts';
import { writeConfigDrive } from '../src/system/configdrive.ts';
import { createPartitionImageLayout, deviceSize, getPartitionUuids, withPartitionDevice } from '../src/system/partitions/index.ts';
import { defineStep } from './define.ts';
import type { StepContext } from './types.ts';

// Ironic's `direct` deploy: its own write_image step (priority 80) switches
// into this in-band step with the image_info it built (agent.py write_image).

const ImageInfo = Type.Object(
  {
    urls: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
    id: Type.Optional(Type.String()),
    disk_format: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    container_format: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    checksum: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    os_hash_algo: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    os_hash_value: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    image_type: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  },
  { additionalProperties: true },
);

const MiB = 1024 * 1024;

function progressReporter(ctx: StepContext) {
  return (p: io.Progress & { phase: 'download' | 'convert' }) => {
    const done = `${Math.round(p.bytesWritten / MiB)} MiB`;
    const total = p.totalBytes ? ` of ${Math.round(p.totalBytes / MiB)} MiB` : '';
    const rate = p.bytesPerSec ? ` at ${Math.round(p.bytesPerSec / MiB)} MiB/s` : '';
    ctx.progress(`write_image: ${p.phase === 'convert' ? 'converting' : 'writing'} ${done}${total}${rate}`);
  };
}

/** The pipeline request for Ironic's image_info, with this step's progress and abort wiring. */
function pipelineRequest(ctx: StepContext, info: Record<string, any>, device: string, size: number): io.WriteImageRequest {
  return {
    ...io.requestFromImageInfo(info, ctx.lookupConfig, { device, deviceSize: size }, ctx.options),
    onProgress: progressReporter(ctx),
    signal: ctx.signal,
  };
}

/**
 * The checksum to verify. Ironic 29.0 sends `agent_md5_checksum_enable` at
 * lookup ([agent]allow_md5_checksum; 21.4 does not send it, which IPA and we
 * read as allowed): when false, an md5 checksum is refused before the disk is
 * touched, also when a checksums file named by URL turns out to hold one.
 */
async function verifiedChecksum(ctx: StepContext, req: io.WriteImageRequest): Promise<io.WriteImageRequest> {
  const expected = req.checksum;
  if (!expected || ctx.lookupConfig.agent_md5_checksum_enable !== false) return req;
  const resolved = expected.algoFromLength ? await io.resolveChecksum(expected, req.urls[0] ?? '', req) : expected;
  if (resolved?.algo === 'md5') {
    throw new ChecksumNotAllowedError(
      'MD5 support is disabled by the conductor (agent_md5_checksum_enable is false): ' +
        'give a sha256 or sha512 checksum (image_os_hash_algo/image_os_hash_value)',
    );
  }
  return { ...req, checksum: resolved };
}

async function writeWholeDisk(ctx: StepContext, info: Record<string, any>, device: string, configdrive: string | undefined) {
  const req = await verifiedChecksum(ctx, pipelineRequest(ctx, info, device, await deviceSize(device)));
  const result = await io.writeImage({ ...req, guard: ctx.guard });
  let configDrive;
  if (configdrive) {
    ctx.progress('write_image: writing the config drive');
    configDrive = (await writeConfigDrive(device, configdrive, ctx.guard)).partition;
  }
  ctx.deployState.partitionUuids = { ...(await getPartitionUuids(device, { type: 'whole-disk' })) };
  return { image: result, configdrive_partition: configDrive ?? null };
}

async function writePartitionImage(ctx: StepContext, info: Record<string, any>, device: string, configdrive: string | undefined) {
  // Checked before the disk is re-partitioned: a refused checksum leaves it as it was.
  const base = await verifiedChecksum(ctx, pipelineRequest(ctx, info, device, 0));
  const num = (v: unknown) => (v === undefined || v === null || v === '' ? undefined : Number(v));
  const layout = await createPartitionImageLayout(
    device,
    {
      bootMode: info.deploy_boot_mode === 'uefi' ? 'uefi' : 'bios',
      diskLabel: info.disk_label ?? null,
      rootMb: num(info.root_mb) ?? (num(info.root_gb) !== undefined ? num(info.root_gb)! * 1024 : undefined),
      swapMb: num(info.swap_mb),
      ephemeralMb: num(info.ephemeral_mb),
      ephemeralFormat: info.ephemeral_format ?? null,
      preserveEphemeral: info.preserve_ephemeral === true || info.preserve_ephemeral === 'true',
      configdrive: configdrive ?? null,
      cpuArch: ctx.node.properties?.cpu_arch,
    },
    ctx.guard,
  );
  // The root partition is a range of the disk the guard already allowed.
  const root = { number: layout.root.number, start: layout.root.offset, size: layout.root.size };
  const result = await withPartitionDevice(device, root, (part) =>
    io.writeImage({ ...base, device: part, deviceSize: layout.root.size }),
  );
  const uuids = await getPartitionUuids(device, { type: 'partition', layout, cpuArch: ctx.node.properties?.cpu_arch });
  ctx.deployState.partitionUuids = { ...uuids };
  return { image: result, layout };
}

export const step = defineStep({
  name: 'write_image',
  priority: { deploy: 0 },
  description:
    'Streams the image onto the root device (raw, compressed raw, qcow2; whole disk or partition image), ' +
      'verifies its checksum in the same pass, then writes the config drive.',
  argsinfo: {
    image_info: { description: 'Image to write (sent by Ironic\'s write_image step)', required: true, schema: ImageInfo },
    configdrive: {
      description: 'Config drive: gzip+base64 image or URL',
      required: false,
      schema: Type.Union([Type.String(), Type.Null()]),
    },
  },
  async run(ctx, args) {
    const info = args.image_info as Record<string, any>;
    const configdrive = (args.configdrive ?? info.configdrive ?? undefined) as string | undefined;
    const root = await ctx.rootDevice();
    ctx.guard.assertWritable(root.name);
    const partition = info.image_type === 'partition';
    ctx.progress(`write_image: ${partition ? 'partition' : 'whole disk'} image to ${root.name}`);
    // The pipeline's failures (src/io/errors.ts) reach Ironic through the commands' wire table.
    const out = partition
      ? await writePartitionImage(ctx, info, root.name, configdrive || undefined)
      : await writeWholeDisk(ctx, info, root.name, configdrive || undefined);
    ctx.deployState.rootDevice = root.name;
    ctx.deployState.isWholeDisk = !partition;
    const r = out.image;
    const seconds = (r.durationMs / 1000).toFixed(1);
    ctx.progress(
      `write_image: done, ${Math.round(r.bytesWritten / MiB)} MiB in ${seconds} s, ` +
        `${r.checksum.algo} ${r.checksumVerified ? 'verified' : 'computed'}`,
    );
    return { device: root.name, ...out, partition_uuids: ctx.deployState.partitionUuids };
  },
});
