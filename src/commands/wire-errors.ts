import {
  BlockDeviceFailure,
  ChecksumNotAllowedError,
  DeviceNotFoundError,
  DiskEraseError,
  ExternalCommandFailure,
  IncompatibleHardwareError,
  InvalidArgumentsError,
  SoftwareRaidFailure,
} from '../base/errors.ts';
import { BurninConfigError } from '../hardware/burnin.ts';
import * as image from '../io/index.ts';

// IPA's error classes as the wire sees them, and the one table that maps the
// domain errors thrown below (src/base/errors.ts, src/io/errors.ts) onto them.
// On the wire `type` is the class name, `code` its HTTP-ish status, `message`
// IPA's fixed text for the class and `details` what happened (Ironic shows
// `details or message`, and fails a step at once when type is TypeError).
// Names, codes and messages are IPA's (ironic_python_agent/errors.py).

export interface WireError {
  type: string;
  code: number;
  message: string;
  details: string;
}

export class AgentError extends Error {
  readonly code: number = 500;
  /** The fixed text IPA uses for this class. */
  readonly fixedMessage: string = 'An error occurred';
  constructor(readonly details: string) {
    super(details);
    this.name = new.target.name;
  }
  toWire(): WireError {
    return { type: this.name, code: this.code, message: this.fixedMessage, details: this.details };
  }
}

export class InvalidCommandParamsError extends AgentError {
  override readonly code = 400;
  override readonly fixedMessage = 'Invalid command parameters';
}
export class CommandExecutionError extends AgentError {
  override readonly fixedMessage = 'Command execution failed';
}
export class CleaningError extends AgentError {
  override readonly fixedMessage = 'Clean step failed';
}
export class DeploymentError extends AgentError {
  override readonly fixedMessage = 'Deploy step failed';
}
export class ServicingError extends AgentError {
  override readonly fixedMessage = 'Service step failed';
}
export class ImageDownloadError extends AgentError {
  override readonly fixedMessage = 'Error downloading image';
}
export class ImageChecksumError extends AgentError {
  override readonly fixedMessage = 'Error verifying image checksum';
}
export class ImageWriteError extends AgentError {
  override readonly fixedMessage = 'Error writing image to device';
}
/** IPA's InvalidImage (a DeploymentError there): the image failed validation. */
export class InvalidImage extends AgentError {
  override readonly fixedMessage = 'The provided image is not valid for use';
}
export class BlockDeviceError extends AgentError {
  override readonly fixedMessage = 'Block device caused unknown error';
}
export class BlockDeviceEraseError extends AgentError {
  override readonly fixedMessage = 'Error erasing block device';
}
export class DeviceNotFound extends AgentError {
  override readonly code = 404;
  override readonly fixedMessage = 'Error finding the disk or partition device to deploy the image onto';
}
export class IncompatibleHardwareMethodError extends AgentError {
  override readonly fixedMessage = 'HardwareManager method is not compatible with hardware';
}
export class SystemRebootError extends AgentError {
  override readonly fixedMessage = 'Error rebooting system';
}
/** IPA's SoftwareRAIDError: a software RAID config that cannot be applied or removed. */
export class SoftwareRAIDError extends AgentError {
  override readonly fixedMessage = 'Software RAID caused unknown error';
}
/** Ours, not IPA's: a command IPA has that this agent does not implement. */
export class NotSupportedError extends AgentError {
  override readonly fixedMessage = 'Command is not supported by this agent';
}
/** Ours, not IPA's (IPA sends CommandExecutionError): image.install_bootloader failed. */
export class BootloaderInstallError extends AgentError {
  override readonly fixedMessage = 'Error installing bootloader';
}

type ErrorClass = abstract new (...args: any[]) => Error;
type WireClass = new (details: string) => AgentError;

/**
 * Domain error -> IPA's class. The first row whose class the error is an
 * instance of wins, so a subclass comes before its base class.
 */
export const WIRE_TABLE: ReadonlyArray<readonly [ErrorClass, WireClass]> = [
  [DeviceNotFoundError, DeviceNotFound],
  [InvalidArgumentsError, InvalidCommandParamsError],
  [ExternalCommandFailure, CommandExecutionError],
  [IncompatibleHardwareError, IncompatibleHardwareMethodError],
  [DiskEraseError, BlockDeviceEraseError],
  [BlockDeviceFailure, BlockDeviceError],
  [SoftwareRaidFailure, SoftwareRAIDError],
  // IPA's burn-in raises CleaningError itself, in whichever phase it runs.
  [BurninConfigError, CleaningError],
  [ChecksumNotAllowedError, ImageChecksumError],
  [image.ImageChecksumError, ImageChecksumError],
  [image.ImageDownloadError, ImageDownloadError],
  [image.ImageFormatError, InvalidImage],
  [image.ImageTooLargeError, InvalidImage],
  // Any other failure of the image pipeline happened while writing.
  [image.ImageError, ImageWriteError],
];

/** IPA's class for a domain error, or undefined when the table has no row for it. */
export function wireClassOf(err: unknown): WireClass | undefined {
  return WIRE_TABLE.find(([domain]) => err instanceof domain)?.[1];
}

/**
 * Turns anything thrown into IPA's error object: a wire class as it is, a
 * domain error through the table, anything else as `fallback` (the phase's
 * error for steps, CommandExecutionError otherwise) with its message as details.
 */
export function toWireError(err: unknown, fallback: WireClass = CommandExecutionError): WireError {
  if (err instanceof AgentError) return err.toWire();
  const message = err instanceof Error ? err.message : String(err);
  const wire = wireClassOf(err) ?? fallback;
  return new wire(message).toWire();
}
