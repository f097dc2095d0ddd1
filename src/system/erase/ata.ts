import { log } from '../../log.ts';
import { CommandFailedError, run, ToolMissingError } from '../exec.ts';
import type { Guard } from '../safety.ts';
import { DiskEraseError } from '../../base/errors.ts';

// ATA Security Erase through hdparm, walking the ATA security state machine
// the way IPA does (SEC1..SEC6): refuse frozen drives, unlock a drive left
// locked by an earlier failed attempt, refuse drives with a foreign
// password, set a temporary empty ("NULL") user password, erase (enhanced
// when supported), and check that security ended up disabled again.

/** The indented lines under "Security:" of `hdparm -I`, trimmed, tabs as spaces. */
export function parseSecurityLines(hdparmI: string): string[] {
  const marker = '\nSecurity: \n';
  const at = hdparmI.indexOf(marker);
  if (at < 0) return [];
  const lines: string[] = [];
  for (const line of hdparmI.slice(at + marker.length).split('\n')) {
    if (!line.startsWith('\t')) break;
    lines.push(line.trim().replace(/\t/g, ' '));
  }
  return lines;
}

async function securityLines(device: string): Promise<string[]> {
  return parseSecurityLines((await run('hdparm', ['-I', device])).stdout);
}

/**
 * smartctl's view of ATA security: false when direct ATA commands do not get
 * through (e.g. a SAT bridge hdparm misreads). A missing smartctl is no
 * objection, as in IPA.
 */
async function smartctlAllowsSecurity(device: string): Promise<boolean> {
  try {
    const r = await run('smartctl', ['-d', 'ata', device, '-g', 'security'], { okExitCodes: [127] });
    return !r.stdout.includes('Unavailable');
  } catch (err) {
    if (err instanceof ToolMissingError) return true;
    log.warn({ device }, 'refusing ATA secure erase: direct ATA commands through smartctl do not succeed');
    return false;
  }
}

const hdparm = (args: string[], device: string) => run('hdparm', ['--user-master', 'u', ...args, device], { timeoutMs: 48 * 3600_000 });

async function attemptUnlock(device: string, lines?: string[]): Promise<string[]> {
  let current = lines ?? (await securityLines(device));
  // hdparm < 9.51 read an empty password as the literal "NULL"; try both.
  for (const password of ['NULL', '']) {
    if (current.includes('not locked')) break;
    try {
      await hdparm(['--security-unlock', password], device);
    } catch (err) {
      log.info({ device, password, err: (err as Error).message }, 'security unlock failed');
    }
    current = await securityLines(device);
  }
  return current;
}

/**
 * Returns false when the drive does not support ATA security (the caller
 * tries another method); throws DiskEraseError when it does but the
 * erase cannot be done.
 */
export async function ataSecureErase(device: string, guard: Guard): Promise<boolean> {
  guard.assertWritable(device);
  let lines: string[];
  try {
    lines = await securityLines(device);
  } catch (err) {
    if (err instanceof ToolMissingError) return false;
    if (err instanceof CommandFailedError) return false; // not an ATA device hdparm can talk to
    throw err;
  }
  if (!lines.includes('supported') || !(await smartctlAllowsSecurity(device))) return false;

  if (!lines.includes('not frozen')) {
    throw new DiskEraseError(`Block device ${device} is frozen and cannot be erased`);
  }
  lines = await attemptUnlock(device, lines);
  if (!lines.includes('not locked')) {
    throw new DiskEraseError(`Block device ${device} already has a security password set`);
  }
  if (lines.includes('not enabled')) {
    try {
      await hdparm(['--security-set-pass', 'NULL'], device);
    } catch (err) {
      throw new DiskEraseError(`Security password set failed for device ${device}: ${(err as Error).message}`);
    }
  }
  const option = lines.includes('not supported: enhanced erase') ? '--security-erase' : '--security-erase-enhanced';
  try {
    log.info({ device, option }, 'ATA secure erase');
    await hdparm([option, 'NULL'], device);
  } catch (err) {
    // Unlock so that an overwrite fallback can still write to the drive.
    await attemptUnlock(device).catch(() => undefined);
    throw new DiskEraseError(`Erase failed for device ${device}: ${(err as Error).message}`);
  }
  if (!(await securityLines(device)).includes('not enabled')) {
    throw new DiskEraseError(`An unknown error occurred erasing block device ${device}`);
  }
  return true;
}
