import { log } from '../log.ts';

// What Ironic 2026.2's API lets through to /v1/continue_inspection
// (api/middleware/json_depth.py): a body of at most
// [api]max_json_body_size_inspection = 16384 KiB, nested at most
// [api]max_json_body_depth = 25 brackets deep. A bigger or deeper body is
// refused whole (413 / 400) and the node's inspection fails; so the agent
// makes its payload fit first. The logs (base64 of a gzipped tar, IPA's
// "logs" collector) are the part that grows: they are cut, at a base64
// boundary (the archive then reads up to the cut), and the payload says so
// in logs_truncated. A container nested deeper than the limit is sent as
// its JSON text instead, and listed in json_flattened.

export const INSPECTION_BODY_LIMIT = 16384 * 1024;
export const JSON_DEPTH_LIMIT = 25;
/** Room for the logs_truncated note and rounding. */
const NOTE_ROOM = 1024;

export interface FitLimits {
  maxBytes?: number;
  maxDepth?: number;
}

export interface FitReport {
  /** Bytes of the body as it would have been sent. */
  originalBytes: number;
  /** Bytes of the body that will be sent. */
  bytes: number;
  logsCut?: { originalChars: number; sentChars: number };
  flattened: string[];
}

/** Replaces every container deeper than `maxDepth` brackets with its JSON text; returns the paths replaced. */
function flattenDeep(value: unknown, maxDepth: number, depth: number, path: string, out: string[]): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth > maxDepth) {
    out.push(path || '$');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return value.map((v, i) => flattenDeep(v, maxDepth, depth + 1, `${path}[${i}]`, out));
  const obj: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) obj[k] = flattenDeep(v, maxDepth, depth + 1, path ? `${path}.${k}` : k, out);
  return obj;
}

/**
 * The payload as it can be sent: nested no deeper than maxDepth, and (logs cut
 * when needed) no bigger than maxBytes. Throws when even without logs it is too big.
 */
export function fitInspectionPayload<T extends Record<string, unknown>>(payload: T, limits: FitLimits = {}): { payload: T; report: FitReport } {
  const maxBytes = limits.maxBytes ?? INSPECTION_BODY_LIMIT;
  const maxDepth = limits.maxDepth ?? JSON_DEPTH_LIMIT;
  const size = (v: unknown) => Buffer.byteLength(JSON.stringify(v));
  const originalBytes = size(payload);
  const flattened: string[] = [];
  let fitted = flattenDeep(payload, maxDepth, 1, '', flattened) as T & { logs?: unknown; json_flattened?: string[] };
  if (flattened.length) {
    fitted = { ...fitted, json_flattened: flattened };
    log.warn({ paths: flattened, maxDepth }, 'inspection data nested deeper than Ironic accepts: those parts are sent as JSON text');
  }
  let bytes = size(fitted);
  let logsCut: FitReport['logsCut'];
  if (bytes > maxBytes && typeof fitted.logs === 'string') {
    const logs = fitted.logs;
    const rest = bytes - Buffer.byteLength(JSON.stringify(logs)) + 2; // the two quotes stay
    // base64 is ASCII (one byte a character); a multiple of 4 keeps every decoded byte whole.
    const room = Math.max(0, maxBytes - rest - NOTE_ROOM);
    const kept = logs.slice(0, room - (room % 4));
    logsCut = { originalChars: logs.length, sentChars: kept.length };
    fitted = {
      ...fitted,
      logs: kept,
      logs_truncated: {
        reason: `the inspection body may not pass ${maxBytes} bytes (Ironic [api]max_json_body_size_inspection)`,
        original_chars: logs.length,
        sent_chars: kept.length,
      },
    };
    bytes = size(fitted);
    log.warn({ ...logsCut, maxBytes }, 'inspection logs cut to keep the body under Ironic\'s limit (the archive reads up to the cut)');
  }
  if (bytes > maxBytes) throw new Error(`inspection data is ${bytes} bytes without room for logs; Ironic accepts at most ${maxBytes}`);
  return { payload: fitted, report: { originalBytes, bytes, logsCut, flattened } };
}
