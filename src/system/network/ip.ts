import { output, run } from '../exec.ts';

// Thin typed layer over `ip -j`: the JSON output is stable across iproute2
// releases, unlike the human-readable one. Everything here acts on the
// network namespace the agent runs in and nothing else.

export interface IpAddress {
  family: 'inet' | 'inet6';
  local: string;
  prefixlen: number;
  scope: string;
  tentative?: boolean;
  dadfailed?: boolean;
  deprecated?: boolean;
}

export interface IpLink {
  ifname: string;
  ifindex: number;
  flags: string[];
  link_type: string;
  address?: string;
  operstate?: string;
  linkinfo?: { info_kind?: string };
  addr_info?: IpAddress[];
}

export interface IpRoute {
  dst?: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
}

function parseJsonArray<T>(text: string, what: string): T[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const parsed: unknown = JSON.parse(trimmed);
  if (!Array.isArray(parsed)) throw new Error(`unexpected 'ip -j ${what}' output: not an array`);
  return parsed as T[];
}

/** Links with details (link kind) and their addresses. */
export async function listLinksWithAddresses(): Promise<IpLink[]> {
  return parseJsonArray<IpLink>(await output('ip', ['-j', '-d', 'addr', 'show'], { timeoutMs: 10_000 }), 'addr');
}

/** The route the kernel would use to reach `address` (undefined when unreachable). */
export async function routeTo(address: string): Promise<IpRoute | undefined> {
  try {
    const routes = parseJsonArray<IpRoute>(
      await output('ip', ['-j', 'route', 'get', address], { timeoutMs: 10_000 }),
      'route get',
    );
    return routes[0];
  } catch {
    return undefined; // "Network is unreachable" and friends
  }
}

export async function ip(args: readonly string[]): Promise<void> {
  await run('ip', args, { timeoutMs: 30_000 });
}
