import { log } from '../log.ts';
import { hasTool, run } from '../system/exec.ts';

// LLDP for the inventory, in IPA's shape: per interface a list of
// [tlv_type, hex_value] pairs taken straight from the first LLDP frame heard
// (Ironic's LLDP processing decodes them). IPA opens raw sockets; Node has
// none, so one tcpdump per interface captures a single 0x88cc frame.

export type LldpTlvs = Array<[number, string]>;

/** Split an LLDP PDU (the bytes after the Ethernet header) into TLVs, stopping at End of LLDPDU. */
export function parseLldpTlvs(pdu: Buffer): LldpTlvs {
  const tlvs: LldpTlvs = [];
  let pos = 0;
  while (pos + 2 <= pdu.length) {
    const header = pdu.readUInt16BE(pos);
    const type = header >> 9;
    const length = header & 0x1ff;
    pos += 2;
    if (type === 0) break;
    if (pos + length > pdu.length) break; // truncated frame: keep what was whole
    tlvs.push([type, pdu.subarray(pos, pos + length).toString('hex')]);
    pos += length;
  }
  return tlvs;
}

/** The raw frame from `tcpdump -x` hex lines ("0x0000:  0180 c200 000e ..."). */
export function frameFromTcpdumpHex(text: string): Buffer {
  const hex = text
    .split('\n')
    .filter((l) => /^\s*0x[0-9a-f]+:/i.test(l))
    .map((l) => l.replace(/^\s*0x[0-9a-f]+:\s*/i, '').replace(/\s+/g, ''))
    .join('');
  return Buffer.from(hex, 'hex');
}

/** The LLDP PDU inside an Ethernet frame (skips an 802.1Q tag if present). */
export function lldpPduOfFrame(frame: Buffer): Buffer | null {
  let off = 12;
  if (frame.length >= 16 && frame.readUInt16BE(off) === 0x8100) off += 4;
  if (frame.length < off + 2 || frame.readUInt16BE(off) !== 0x88cc) return null;
  return frame.subarray(off + 2);
}

/** Listen on each interface for up to timeoutSec; interfaces that heard nothing are absent. */
export async function collectLldp(interfaces: readonly string[], timeoutSec = 30): Promise<Record<string, LldpTlvs>> {
  const result: Record<string, LldpTlvs> = {};
  if (!(await hasTool('tcpdump'))) {
    log.warn('tcpdump is not installed: LLDP data cannot be collected');
    return result;
  }
  await Promise.all(
    interfaces.filter((n) => n !== 'lo').map(async (name) => {
      try {
        // -e keeps the link header so the frame starts at the MACs; -x prints it in hex.
        const r = await run('tcpdump', ['-i', name, '-c', '1', '-e', '-xx', '-n', '-s', '0', 'ether', 'proto', '0x88cc'], {
          timeoutMs: timeoutSec * 1000,
        });
        const pdu = lldpPduOfFrame(frameFromTcpdumpHex(r.stdout));
        if (pdu) result[name] = parseLldpTlvs(pdu);
      } catch (err) {
        log.debug({ iface: name, err: (err as Error).message }, 'no LLDP frame received');
      }
    }),
  );
  return result;
}
