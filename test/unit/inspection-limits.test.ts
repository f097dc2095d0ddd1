import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fitInspectionPayload, INSPECTION_BODY_LIMIT, JSON_DEPTH_LIMIT } from '../../src/hardware/inspection-limits.ts';
import { inspectionPayload, type Inventory } from '../../src/hardware/inventory.ts';

// Ironic 2026.2 refuses a /v1/continue_inspection body over 16384 KiB or
// nested deeper than 25 (api/middleware/json_depth.py): the payload is made
// to fit, logs cut and the cut said so.

const inventory = {
  interfaces: [{ name: 'eth0', mac_address: '52:54:00:39:00:10', ipv4_address: '192.0.2.10', lldp: null }],
  cpu: { model_name: 'x', count: 2, architecture: 'x86_64', flags: [] },
  disks: [{ name: '/dev/vda', size: 10 * 2 ** 30, rotational: false, model: '', vendor: '', serial: '', wwn: null }],
  memory: { total: 2 ** 31, physical_mb: 2048 },
  bmc_address: '0.0.0.0',
  bmc_v6address: '::/0',
  system_vendor: { product_name: 'p', serial_number: 's', manufacturer: 'm' },
  boot: { current_boot_mode: 'bios', pxe_interface: '01-52-54-00-39-00-10' },
  hostname: 'h',
} as unknown as Inventory;

/** Ironic's own depth scan (json_depth.check_depth), brackets outside strings. */
function depthOf(json: string): number {
  let depth = 0;
  let most = 0;
  let inString = false;
  let escape = false;
  for (const ch of json) {
    if (escape) escape = false;
    else if (inString) {
      if (ch === '\\') escape = true;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === '{' || ch === '[') most = Math.max(most, ++depth);
    else if (ch === '}' || ch === ']') depth--;
  }
  return most;
}

describe('inspection payload under Ironic\'s limits', () => {
  it('logs that would pass 16 MiB are cut at a base64 boundary; the body fits and says so', () => {
    const logs = randomBytes(13 * 2 ** 20).toString('base64'); // ~17.3 MiB of base64
    expect(logs.length).toBeGreaterThan(INSPECTION_BODY_LIMIT);
    const payload = inspectionPayload(inventory, { logs }) as unknown as Record<string, any>;
    const body = JSON.stringify(payload);
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(INSPECTION_BODY_LIMIT);
    expect(payload.logs.length % 4).toBe(0);
    expect(logs.startsWith(payload.logs)).toBe(true);
    expect(payload.logs.length).toBeGreaterThan(INSPECTION_BODY_LIMIT - 64 * 1024); // cut, not dropped
    expect(payload.logs_truncated).toMatchObject({ original_chars: logs.length, sent_chars: payload.logs.length });
    expect(payload.logs_truncated.reason).toMatch(/16777216 bytes/);
    expect(payload.inventory.interfaces[0].mac_address).toBe('52:54:00:39:00:10');
  });

  it('small logs are left alone, with no note', () => {
    const payload = inspectionPayload(inventory, { logs: 'H4sIAAAAAAAAA+3BAQ0AAADCoPdPbQ8HFAAAAAAAAAAA' }) as unknown as Record<string, any>;
    expect(payload.logs).toBe('H4sIAAAAAAAAA+3BAQ0AAADCoPdPbQ8HFAAAAAAAAAAA');
    expect(payload.logs_truncated).toBeUndefined();
    expect(payload.json_flattened).toBeUndefined();
  });

  it('a part nested deeper than 25 is sent as JSON text, the rest as it was', () => {
    let deep: unknown = { leaf: 1 };
    for (let i = 0; i < 40; i++) deep = [deep];
    const { payload, report } = fitInspectionPayload({ inventory, extra: { deep } });
    const body = JSON.stringify(payload);
    expect(depthOf(JSON.stringify({ inventory, extra: { deep } }))).toBeGreaterThan(JSON_DEPTH_LIMIT);
    expect(depthOf(body)).toBeLessThanOrEqual(JSON_DEPTH_LIMIT);
    expect(report.flattened).toHaveLength(1);
    expect((payload as any).json_flattened).toEqual(report.flattened);
    // Nothing lost: the text parses back into what was cut off.
    let node: any = (payload as any).extra.deep;
    while (Array.isArray(node)) node = node[0];
    let back = JSON.parse(node as string);
    while (Array.isArray(back)) back = back[0];
    expect(back).toEqual({ leaf: 1 });
    expect((payload as any).inventory).toEqual(inventory);
  });

  it('too big even without logs: refused here with the reason, not sent to be refused', () => {
    expect(() => fitInspectionPayload({ inventory, blob: 'x'.repeat(2048) }, { maxBytes: 1024 })).toThrow(/Ironic accepts at most 1024/);
  });
});
