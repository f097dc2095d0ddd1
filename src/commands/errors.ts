// IPA's error classes as the wire sees them: `type` is the class name, `message`
// a fixed text for the type, `details` what happened. Ironic shows
// `details or message`, and fails a step at once when type is TypeError.

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

export interface WireError {
  type: string;
  code: number;
  message: string;
  details: string;
}

export class InvalidCommandError extends AgentError {
  override readonly code = 400;
  override readonly fixedMessage = 'Invalid command';
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
export class ServiceError extends AgentError {
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
export class InvalidImageError extends AgentError {
  override readonly fixedMessage = 'Image is invalid or of a format that is not permitted';
}
export class BlockDeviceError extends AgentError {
  override readonly fixedMessage = 'Block device caused unknown error';
}
export class DeviceNotFound extends AgentError {
  override readonly code = 404;
  override readonly fixedMessage = 'Error finding devices';
}
export class IncompatibleHardwareMethodError extends AgentError {
  override readonly fixedMessage = 'HardwareManager method is not compatible with current hardware';
}
export class NotSupportedError extends AgentError {
  override readonly fixedMessage = 'Command is not supported by this agent';
}
export class SystemRebootError extends AgentError {
  override readonly fixedMessage = 'Error changing the power state of the machine';
}
export class BootloaderInstallError extends AgentError {
  override readonly fixedMessage = 'Error installing bootloader';
}

/** Turns anything thrown into IPA's error object, keeping the class name when it is ours. */
export function toWireError(err: unknown, fallback: new (d: string) => AgentError = CommandExecutionError): WireError {
  if (err instanceof AgentError) return err.toWire();
  const message = err instanceof Error ? err.message : String(err);
  return new fallback(message).toWire();
}
