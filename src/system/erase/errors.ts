import { AgentError } from '../../commands/errors.ts';

/** IPA's BlockDeviceEraseError: an erase method that should work did not. */
export class BlockDeviceEraseError extends AgentError {
  override readonly fixedMessage = 'Error erasing block device';
}
