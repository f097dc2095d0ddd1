// The domain errors: what went wrong, in the words of the layer that saw it.
// Lower layers (hardware/, system/, io/, steps/) throw these and never IPA's
// wire classes; one table at the commands boundary (src/commands/wire-errors.ts)
// turns them into the type, code and message Ironic expects from IPA. An error
// that is not in the table goes out as the phase's error (CleaningError,
// DeploymentError, ServicingError) with its message as the details.
// This file is part of the base layer: it imports nothing of ours.

/** The root of every domain error: `name` is the class name, `message` is what an operator reads. */
export class DomainError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** No disk (or partition) to work on: no root device fits the hints, no disk at all. */
export class DeviceNotFoundError extends DomainError {}

/** The arguments given cannot be acted upon (missing, of the wrong type, unknown). */
export class InvalidArgumentsError extends DomainError {}

/** An external program the operation depends on failed (burn-in's stress-ng/fio, ...). */
export class ExternalCommandFailure extends DomainError {}

/** The hardware cannot do what was asked the way it was asked (secure erase without a fallback, ...). */
export class IncompatibleHardwareError extends DomainError {}

/** Erasing a disk failed, or a disk that must be erased cannot be. */
export class DiskEraseError extends DomainError {}

/** A disk failed in a way that is not an erase: a read error, a short device. */
export class BlockDeviceFailure extends DomainError {}

/** The operation was aborted (Ironic aborted the step, or the agent is stopping). */
export class OperationAbortedError extends DomainError {}

/** A checksum the conductor does not allow (md5 when agent_md5_checksum_enable is false). */
export class ChecksumNotAllowedError extends DomainError {}

/** Software RAID cannot be configured or removed as asked (a bad target_raid_config, mdadm failing). */
export class SoftwareRaidFailure extends DomainError {}
