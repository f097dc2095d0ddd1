import { NotSupportedError } from '../wire-errors.ts';
import type { CommandSpec } from '../engine.ts';

// Commands Ironic can send that this agent does not implement yet answer a
// FAILED result that says so, never a fake success.
export function unsupported(name: string, why: string): CommandSpec {
  return {
    async: false,
    async run() {
      throw new NotSupportedError(`${name} is not supported by metal-agent yet: ${why}`);
    },
  };
}
