import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DiskEraseError, ExternalCommandFailure, InvalidArgumentsError } from '../../src/base/errors.ts';
import { CommandEngine } from '../../src/commands/engine.ts';
import { stepCommands } from '../../src/commands/step-commands.ts';
import { SystemRebootError } from '../../src/commands/wire-errors.ts';
import type { BlockDevice } from '../../src/hardware/types.ts';
import { rootDeviceHintsOf, selectRootDevice } from '../../src/hardware/root-device-hints.ts';
import { ImageChecksumError, ImageDownloadError, ImageTooLargeError, ImageWriteError } from '../../src/io/errors.ts';
import { log } from '../../src/log.ts';
import { eraseBlockDevice } from '../../src/system/erase/erase-block-device.ts';
import { Guard } from '../../src/system/safety.ts';
import { ALL_STEPS } from '../../steps/index.ts';
import { StepRegistry } from '../../steps/registry.ts';
import type { StepContext, StepDescriptor, StepPhase } from '../../steps/types.ts';

// What Ironic sees when a step fails: the command_error of the command result
// (type, code, message, details), as IPA would send it for the same failure.
// Each case runs a step command through the command engine; the failures come
// from the real lower-layer code (root device selection, the write_image and
// verify_root_device steps, the erase decision list, burn-in) wherever that
// can run without a real disk, and from a domain error thrown by a test step
// where it cannot. Nothing here writes to a device: the guard allows only a
// temporary file, and the erase methods are fakes.

const work = mkdtempSync(join(tmpdir(), 'wire-errors-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A file standing in for the root disk: only read (verify_root_device) or named (the guard). */
const fakeRoot = join(work, 'root-disk');
writeFileSync(fakeRoot, Buffer.alloc(4096, 1));

function disk(p: Partial<BlockDevice> & { name: string }): BlockDevice {
  return { model: '', size: 0, rotational: false, wwn: null, serial: null, vendor: null, wwn_with_extension: null, wwn_vendor_extension: null, hctl: null, by_path: null, ...p };
}

/** Test-only steps that fail the way a lower layer would. */
function failing(name: string, thrower: () => Promise<never> | never): StepDescriptor {
  return {
    name,
    interface: 'deploy',
    priority: { clean: 0, deploy: 0, service: 0 },
    abortable: false,
    rebootRequested: false,
    description: 'test',
    run: async () => thrower(),
  };
}

const testSteps: StepDescriptor[] = [
  failing('t_invalid_args', () => { throw new InvalidArgumentsError('argument foo must be a list'); }),
  failing('t_tool_failed', () => { throw new ExternalCommandFailure('stress-ng failed with error exit code 2'); }),
  failing('t_checksum', () => { throw new ImageChecksumError('sha256', 'aa', 'bb'); }),
  failing('t_download', () => { throw new ImageDownloadError('every URL failed: http://img/x.raw: HTTP 404'); }),
  failing('t_too_large', () => { throw new ImageTooLargeError(20, 10, 'raw image'); }),
  failing('t_write', () => { throw new ImageWriteError('write to /dev/sdz at 0 failed: EIO'); }),
  failing('t_plain', () => { throw new Error('something unexpected'); }),
  failing('t_wire_class', () => { throw new SystemRebootError('passes through as it is'); }),
  failing('t_secure_erase', async () => {
    // The real decision list: ATA secure erase fails and the fallback is not allowed.
    const dev = disk({ name: fakeRoot });
    await eraseBlockDevice(
      dev,
      { ataSecureErase: true, nvmeSecureErase: true, continueIfSecureEraseFailed: false, skipReadOnly: false, iterations: 1, zeroize: true, concurrency: 1 },
      new Guard({ inRamdisk: false, allowedDevices: [fakeRoot], allowPowerActions: false }),
      {
        methods: {
          isVirtualMedia: () => false,
          isRaidMember: async () => false,
          isReadOnly: () => false,
          ata: async () => { throw new DiskEraseError(`Block device ${fakeRoot} is frozen and cannot be erased`); },
          nvme: async () => false,
          overwrite: async () => { throw new Error('the test must not reach overwrite'); },
        },
      },
    );
    throw new Error('unreachable');
  }),
];

const registry = new StepRegistry([...ALL_STEPS, ...testSteps]);

interface Setup {
  disks?: BlockDevice[];
  guard?: Guard;
  lookupConfig?: Record<string, any>;
}

function engineFor(phase: StepPhase, setup: Setup = {}): CommandEngine {
  const disks = setup.disks ?? [];
  const guard = setup.guard ?? new Guard({ inRamdisk: false, allowedDevices: [fakeRoot], allowPowerActions: false });
  const engine = new CommandEngine();
  engine.register(
    phase,
    stepCommands(phase, {
      registry,
      facts: async () => ({ vendor: '', disks, hasTool: () => true }),
      context: (p, signal): StepContext => ({
        log,
        guard,
        node: p.node,
        ports: p.ports,
        lookupConfig: setup.lookupConfig ?? {},
        disks: async () => disks,
        rootDevice: async () => selectRootDevice(disks, rootDeviceHintsOf(p.node)),
        progress: () => undefined,
        signal,
        options: { imageDownloadRetries: 0, imageDownloadRetryIntervalSec: 0, imageDownloadTimeoutSec: 5 },
        deployState: { partitionUuids: {}, kernelParams: [] },
      }),
    }),
  );
  return engine;
}

async function failureOf(phase: StepPhase, step: string, args: Record<string, unknown> = {}, node: Record<string, any> = {}, setup: Setup = {}) {
  const engine = engineFor(phase, setup);
  const started = await engine.execute(`${phase}.execute_${phase}_step`, { step: { step, interface: 'deploy', args }, node, ports: [] });
  const done = await engine.wait(started.id);
  expect(done?.command_status).toBe('FAILED');
  return done!.command_error!;
}

const DEVICE_NOT_FOUND = 'Error finding the disk or partition device to deploy the image onto';
const noSuchDisk = { instance_info: { root_device: { serial: 'no-such-serial' } } };
const aDisk = disk({ name: '/dev/sdz', size: 100 * 2 ** 30, serial: 'S1' });

describe('domain errors reach Ironic as IPA types (through the command engine)', () => {
  it('no root device for the hints: DeviceNotFound, 404, in deploy (write_image) and clean (verify_root_device)', async () => {
    const deploy = await failureOf('deploy', 'write_image', { image_info: { urls: ['http://127.0.0.1:9/x.raw'] } }, noSuchDisk, { disks: [aDisk] });
    expect(deploy).toMatchObject({ type: 'DeviceNotFound', code: 404, message: DEVICE_NOT_FOUND });
    expect(deploy.details).toMatch(/no-such-serial/);
    const clean = await failureOf('clean', 'verify_root_device', {}, noSuchDisk, { disks: [aDisk] });
    expect(clean).toMatchObject({ type: 'DeviceNotFound', code: 404, message: DEVICE_NOT_FOUND });
  });

  it('no disks at all: DeviceNotFound with IPA-style details', async () => {
    const err = await failureOf('deploy', 'write_image', { image_info: { urls: ['http://127.0.0.1:9/x.raw'] } }, {}, { disks: [] });
    expect(err).toMatchObject({ type: 'DeviceNotFound', code: 404, message: DEVICE_NOT_FOUND });
  });

  it('root device hints that fail to validate: DeviceNotFound too, as IPA\'s get_os_install_device', async () => {
    const err = await failureOf('deploy', 'write_image', { image_info: { urls: ['http://x/y'] } }, { instance_info: { root_device: { size: 'big' } } }, { disks: [aDisk] });
    expect(err).toMatchObject({ type: 'DeviceNotFound', code: 404, message: DEVICE_NOT_FOUND });
    expect(err.details).toMatch(/because they failed to validate/);
  });

  it('a short read of the root device: BlockDeviceError (verify_root_device)', async () => {
    const err = await failureOf('service', 'verify_root_device', {}, {}, { disks: [disk({ name: fakeRoot, size: 8 * 2 ** 30 })] });
    expect(err).toEqual({
      type: 'BlockDeviceError',
      code: 500,
      message: 'Block device caused unknown error',
      details: `read 4096 bytes of ${fakeRoot}, expected ${8 * 2 ** 30}`,
    });
  });

  it('erase_devices_metadata failing on a disk: BlockDeviceEraseError (IPA), not CleaningError', async () => {
    const refused = '/dev/not-allowed-by-the-guard';
    const err = await failureOf('clean', 'erase_devices_metadata', {}, {}, { disks: [disk({ name: refused })] });
    expect(err).toMatchObject({ type: 'BlockDeviceEraseError', code: 500, message: 'Error erasing block device' });
    expect(err.details).toMatch(/^failed to erase metadata: \/dev\/not-allowed-by-the-guard: refusing to write/);
  });

  it('secure erase failing without the shred fallback: IncompatibleHardwareMethodError', async () => {
    const err = await failureOf('clean', 't_secure_erase');
    expect(err).toEqual({
      type: 'IncompatibleHardwareMethodError',
      code: 500,
      message: 'HardwareManager method is not compatible with hardware',
      details: `Failed to invoke secure erase, fallback to shred is not enabled: Block device ${fakeRoot} is frozen and cannot be erased`,
    });
  });

  it('burn-in without its network config: CleaningError, in the service phase too (IPA raises it itself)', async () => {
    for (const phase of ['clean', 'service'] as const) {
      const err = await failureOf(phase, 'burnin_network', {}, { driver_info: {} });
      expect(err).toEqual({
        type: 'CleaningError',
        code: 500,
        message: 'Clean step failed',
        details: "fio (network) failed to find 'agent_burnin_fio_network_config' in driver_info",
      });
    }
  });

  it('md5 refused by the conductor: ImageChecksumError (write_image, before the disk is touched)', async () => {
    const info = { urls: ['http://127.0.0.1:9/x.img'], image_type: 'partition', os_hash_algo: 'md5', os_hash_value: 'd41d8cd98f00b204e9800998ecf8427e' };
    const err = await failureOf('deploy', 'write_image', { image_info: info }, {}, { disks: [disk({ name: fakeRoot, size: 8 * 2 ** 30 })], lookupConfig: { agent_md5_checksum_enable: false } });
    expect(err).toMatchObject({ type: 'ImageChecksumError', code: 500, message: 'Error verifying image checksum' });
    expect(err.details).toMatch(/^MD5 support is disabled by the conductor/);
  });

  it('an unsupported hash algorithm: InvalidImage (write_image, before the disk is touched)', async () => {
    const info = { urls: ['http://127.0.0.1:9/x.img'], image_type: 'partition', os_hash_algo: 'crc32', os_hash_value: '1234' };
    const err = await failureOf('deploy', 'write_image', { image_info: info }, {}, { disks: [disk({ name: fakeRoot, size: 8 * 2 ** 30 })] });
    expect(err).toEqual({ type: 'InvalidImage', code: 500, message: 'The provided image is not valid for use', details: "unsupported os_hash_algo 'crc32'" });
  });

  it('the image pipeline failures: ImageChecksumError, ImageDownloadError, InvalidImage, ImageWriteError', async () => {
    expect(await failureOf('deploy', 't_checksum')).toEqual({
      type: 'ImageChecksumError', code: 500, message: 'Error verifying image checksum', details: 'image checksum mismatch (sha256): expected aa, got bb',
    });
    expect(await failureOf('deploy', 't_download')).toMatchObject({ type: 'ImageDownloadError', code: 500, message: 'Error downloading image' });
    expect(await failureOf('deploy', 't_too_large')).toMatchObject({ type: 'InvalidImage', code: 500 });
    expect(await failureOf('deploy', 't_write')).toEqual({
      type: 'ImageWriteError', code: 500, message: 'Error writing image to device', details: 'write to /dev/sdz at 0 failed: EIO',
    });
  });

  it('invalid arguments: InvalidCommandParamsError, 400 (a domain error, and the step argument check)', async () => {
    expect(await failureOf('deploy', 't_invalid_args')).toEqual({
      type: 'InvalidCommandParamsError', code: 400, message: 'Invalid command parameters', details: 'argument foo must be a list',
    });
    expect(await failureOf('clean', 'erase_devices_metadata', { bogus: 1 })).toEqual({
      type: 'InvalidCommandParamsError', code: 400, message: 'Invalid command parameters', details: 'unknown argument(s): bogus',
    });
  });

  it('an external program failing: CommandExecutionError', async () => {
    expect(await failureOf('clean', 't_tool_failed')).toEqual({
      type: 'CommandExecutionError', code: 500, message: 'Command execution failed', details: 'stress-ng failed with error exit code 2',
    });
  });

  it('anything else: the phase error, with the message as details', async () => {
    const want = (type: string, message: string) => ({ type, code: 500, message, details: 'something unexpected' });
    expect(await failureOf('clean', 't_plain')).toEqual(want('CleaningError', 'Clean step failed'));
    expect(await failureOf('deploy', 't_plain')).toEqual(want('DeploymentError', 'Deploy step failed'));
    expect(await failureOf('service', 't_plain')).toEqual(want('ServicingError', 'Service step failed'));
  });

  it('a wire class thrown at the commands level passes through unchanged', async () => {
    expect(await failureOf('deploy', 't_wire_class')).toEqual({
      type: 'SystemRebootError', code: 500, message: 'Error rebooting system', details: 'passes through as it is',
    });
  });
});
