import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { splitApiUrls } from './base/api-urls.ts';
import { splitZone } from './base/url-zone.ts';
import { parseBoolean } from './base/booleans.ts';
import { parseKernelCmdline } from './base/kernel-cmdline.ts';

// One typed config object from, in rising precedence: defaults, the kernel
// command line (/proc/cmdline or --cmdline-file), METAL_AGENT_* environment
// variables, and command-line flags. Parameter names are IPA 9.4's
// (ironic_python_agent/config.py): `ipa-listen-port` on the kernel command
// line, `--listen-port` as a flag, `METAL_AGENT_LISTEN_PORT` in the environment.

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Kind = 'string' | 'int' | 'float' | 'bool' | 'url' | 'list';

interface ParamSpec {
  /** Name without the ipa- prefix: the flag is --NAME, the kernel parameter ipa-NAME. */
  name: string;
  kind: Kind;
  default?: unknown;
  help: string;
  /** Kernel parameter when it is not ipa-NAME (e.g. BOOTIF). */
  kernelName?: string;
  /** Flag/env only: never read from the kernel command line. */
  localOnly?: boolean;
}

const PARAMS = [
  { name: 'api-url', kind: 'string', help: 'Ironic API URL (several: comma separated, tried in turn), or "mdns" to discover it' },
  { name: 'agent-token', kind: 'string',
    help: 'agent token handed out by Ironic (normally learnt at lookup; virtual media gives it at boot); 32+ characters',
  },
  { name: 'global-request-id', kind: 'string', help: 'request id to carry in logs and requests to Ironic' },
  { name: 'bootif', kernelName: 'BOOTIF', kind: 'string', help: 'MAC of the boot interface (01-aa-bb-cc-dd-ee-ff)' },
  { name: 'node-uuid', kind: 'string', help: 'node UUID for lookup (in addition to MACs)' },
  { name: 'debug', kind: 'bool', default: false, help: 'debug logging' },
  { name: 'insecure', kind: 'bool', default: false, help: 'do not verify the TLS certificates of Ironic and of image servers' },
  { name: 'standalone', kind: 'bool', default: false,
    help: 'serve the API without looking up a node or heartbeating; commands then need no agent token unless one is given (lab use only)',
  },
  { name: 'listen-host', kind: 'string', default: '::', help: 'address the API listens on' },
  { name: 'listen-port', kind: 'int', default: 9999, help: 'port the API listens on' },
  { name: 'api-request-timeout', kind: 'int', default: 120,
    help: 'seconds a client has to send a whole request (headers and body) to the API; a slower one gets 408 and is disconnected',
  },
  { name: 'listen-tls', kind: 'bool', default: false, help: 'serve HTTPS with --certfile/--keyfile' },
  { name: 'enable-auto-tls', kind: 'bool', default: true,
    help: 'generate a self-signed certificate and serve HTTPS (sent to Ironic as agent_verify_ca)',
  },
  { name: 'certfile', kind: 'string', help: 'TLS certificate (PEM) for the API' },
  { name: 'keyfile', kind: 'string', help: 'TLS key (PEM) for the API' },
  { name: 'cafile', kind: 'string', help: 'CA bundle to verify Ironic and image servers with' },
  { name: 'advertise-host', kind: 'string', help: 'address put into callback_url (default: the address used to reach Ironic)' },
  { name: 'advertise-port', kind: 'int', default: 9999, help: 'port put into callback_url' },
  { name: 'advertise-protocol', kind: 'string', default: 'http', help: 'http or https in callback_url (https when TLS is on)' },
  { name: 'lookup-timeout', kind: 'int', default: 300, help: 'seconds to keep trying lookup' },
  { name: 'lookup-interval', kind: 'int', default: 1, help: 'initial seconds between lookup attempts (backs off)' },
  { name: 'network-interface', kind: 'string', help: 'only use this interface for lookup MACs' },
  { name: 'inspection-callback-url', kind: 'string',
    help: 'POST the inspection data here at start, before lookup (Ironic: .../v1/continue_inspection; ironic-inspector: .../v1/continue)',
  },
  { name: 'inspection-collectors', kind: 'string', default: 'default',
    help: 'what the inspection data holds (comma separated, in order): default, logs, pci-devices, lldp, numa-topology, dmi-decode, extra-hardware',
  },
  { name: 'collect-lldp', kind: 'bool', default: false, help: 'collect LLDP in the inventory' },
  { name: 'lldp-timeout', kind: 'int', default: 30, help: 'seconds to listen for an LLDP frame on each interface (inventory and the lldp collector)' },
  { name: 'image-download-connection-timeout', kind: 'int', default: 60, help: 'seconds to wait for image server connections/reads' },
  { name: 'image-download-connection-retries', kind: 'int', default: 9, help: 'retries of a dropped image download (resumed with Range)' },
  { name: 'image-file-dirs', kind: 'list', default: [],
    help: 'directories file:// image and checksum URLs may point into, after symlinks are ' +
      'resolved (comma separated; none: file:// refused)',
  },
  { name: 'image-download-connection-retry-interval', kind: 'int', default: 10, help: 'seconds between image download retries' },
  { name: 'disk-wait-attempts', kind: 'int', default: 10, help: 'in a ramdisk, times to look for the root disk at start (0: do not wait)' },
  { name: 'disk-wait-delay', kind: 'int', default: 3, help: 'seconds between those looks' },
  { name: 'kexec', kind: 'bool', default: false, help: 'answer standby.run_image with a kexec into the deployed OS instead of a reboot' },
  { name: 'cmdline-file', kind: 'string', localOnly: true, help: 'read kernel parameters from this file instead of /proc/cmdline' },
  { name: 'allowed-devices', kind: 'list', localOnly: true, default: [],
    help: 'outside a ramdisk: the only block devices the agent may write (comma separated)',
  },
  { name: 'allow-power-actions', kind: 'bool', localOnly: true, default: false,
    help: 'outside a ramdisk: really power off/reboot/kexec this machine (default: dry run)',
  },
  { name: 'lookup-api-version', kind: 'string', localOnly: true, default: '1.72',
    help: 'X-OpenStack-Ironic-API-Version for lookup/heartbeat',
  },
] as const satisfies readonly ParamSpec[];

type ParamName = (typeof PARAMS)[number]['name'];
type ValueOf<K extends Kind> = K extends 'int' | 'float' ? number : K extends 'bool' ? boolean : K extends 'list' ? string[] : string;
type Camel<S extends string> = S extends `${infer A}-${infer B}` ? `${A}${Capitalize<Camel<B>>}` : S;
type ParamOf<N extends ParamName> = Extract<(typeof PARAMS)[number], { name: N }>;
type HasDefault<P> = P extends { default: unknown } ? true : false;

export type AgentConfig = {
  [N in ParamName as Camel<N>]: HasDefault<ParamOf<N>> extends true
    ? ValueOf<ParamOf<N>['kind']>
    : ValueOf<ParamOf<N>['kind']> | undefined;
} & {
  /** Kernel parameters not known to the agent, kept for steps and logs. */
  extraKernelParams: Record<string, string>;
  /** Every kernel parameter as given (later sources such as mDNS only fill gaps in these). */
  kernelParams: Record<string, string>;
  /** The kernel command line text (virtual media lookup reads boot_method from it). */
  cmdlineText: string;
};

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

function convert(spec: ParamSpec, raw: string, source: string): unknown {
  const where = `${source} parameter ${spec.name}`;
  switch (spec.kind) {
    case 'string':
      return raw;
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${where}: "${raw}" is not an integer`);
      return Number.parseInt(raw, 10);
    }
    case 'float': {
      const n = Number(raw);
      if (raw.trim() === '' || Number.isNaN(n)) throw new ConfigError(`${where}: "${raw}" is not a number`);
      return n;
    }
    case 'bool': {
      const b = parseBoolean(raw);
      if (b === undefined) throw new ConfigError(`${where}: "${raw}" is not a boolean (use true/false)`);
      return b;
    }
    case 'url': {
      try {
        parseUrl(raw);
      } catch {
        throw new ConfigError(`${where}: "${raw}" is not a URL`);
      }
      return raw;
    }
    case 'list':
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
  }
}

/** WHATWG URL parsing, after splitting off an RFC 6874 zone (http://[fe80::1%25eth0]:6385), which it rejects. */
function parseUrl(raw: string): URL {
  return new URL(splitZone(raw).url);
}

function validate(cfg: AgentConfig): void {
  if (cfg.apiUrl !== undefined && cfg.apiUrl !== 'mdns') {
    // Several APIs may be given, comma separated (IPA's rule): each must be a URL.
    const urls = splitApiUrls(cfg.apiUrl);
    if (!urls.length) throw new ConfigError(`parameter api-url: "${cfg.apiUrl}" is neither a URL nor "mdns"`);
    for (const raw of urls) {
      let u: URL;
      try {
        u = parseUrl(raw);
      } catch {
        throw new ConfigError(`parameter api-url: "${raw}" is neither a URL nor "mdns"`);
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') {
        throw new ConfigError(`parameter api-url: "${raw}" must be http:// or https://`);
      }
    }
  }
  for (const p of ['listenPort', 'advertisePort'] as const) {
    if (cfg[p] < 0 || cfg[p] > 65535) throw new ConfigError(`parameter ${p}: ${cfg[p]} is not a port number`);
  }
  if (!['http', 'https'].includes(cfg.advertiseProtocol)) {
    throw new ConfigError(`parameter advertise-protocol: "${cfg.advertiseProtocol}" must be http or https`);
  }
  if (cfg.listenTls && (!cfg.certfile || !cfg.keyfile)) {
    throw new ConfigError('parameter listen-tls: needs --certfile and --keyfile');
  }
  // IPA's rule: an inspection boot without ipa-api-url inspects, then only serves (no lookup, no heartbeats).
  if (!cfg.standalone && cfg.apiUrl === undefined && cfg.inspectionCallbackUrl === undefined) {
    throw new ConfigError(
      'parameter api-url: missing (give ipa-api-url or ipa-inspection-callback-url on the kernel command line, or --api-url), or run --standalone',
    );
  }
}

export interface LoadOptions {
  argv?: string[];
  env?: NodeJS.ProcessEnv;
  /** Overrides reading /proc/cmdline (tests). */
  cmdlineText?: string;
}

export function loadConfig(opts: LoadOptions = {}): AgentConfig {
  const argv = opts.argv ?? process.argv.slice(2);
  const env = opts.env ?? process.env;
  const flagOptions: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const p of PARAMS) flagOptions[p.name] = { type: p.kind === 'bool' ? 'boolean' : 'string' };
  // Boolean flags also take --no-NAME to switch a kernel-line `true` off.
  for (const p of PARAMS) if (p.kind === 'bool') flagOptions[`no-${p.name}`] = { type: 'boolean' };
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({ args: argv, options: flagOptions, strict: true, allowPositionals: false }).values as typeof flags;
  } catch (err) {
    throw new ConfigError(`${(err as Error).message} (see --help)`);
  }

  const cmdlineFile = (flags['cmdline-file'] as string | undefined) ?? env.METAL_AGENT_CMDLINE_FILE;
  let cmdlineText = opts.cmdlineText;
  if (cmdlineText === undefined) {
    const path = cmdlineFile ?? '/proc/cmdline';
    try {
      cmdlineText = readFileSync(path, 'utf8');
    } catch (err) {
      if (cmdlineFile) throw new ConfigError(`parameter cmdline-file: cannot read ${path}: ${(err as Error).message}`);
      cmdlineText = '';
    }
  }
  const kernel = parseKernelCmdline(cmdlineText);
  const known = new Set<string>();

  const cfg: Record<string, unknown> = {};
  for (const spec of PARAMS as readonly ParamSpec[]) {
    const key = camel(spec.name);
    let value: unknown = spec.default;
    const kname = spec.kernelName ?? `ipa-${spec.name}`;
    known.add(kname);
    if (!spec.localOnly && kernel[kname] !== undefined) value = convert(spec, kernel[kname], 'kernel');
    const envName = `METAL_AGENT_${spec.name.toUpperCase().replace(/-/g, '_')}`;
    if (env[envName] !== undefined) value = convert(spec, env[envName]!, 'environment');
    const flag = flags[spec.name];
    if (flag !== undefined) value = spec.kind === 'bool' ? flag : convert(spec, String(flag), 'flag');
    if (spec.kind === 'bool' && flags[`no-${spec.name}`]) value = false;
    cfg[key] = value;
  }
  const extra: Record<string, string> = {};
  for (const [k, v] of Object.entries(kernel)) if (!known.has(k) && k.startsWith('ipa-')) extra[k] = v;
  cfg.extraKernelParams = extra;
  cfg.kernelParams = kernel;
  cfg.cmdlineText = cmdlineText;
  const result = cfg as AgentConfig;
  validate(result);
  return result;
}

/**
 * Applies parameters learnt after start (mDNS TXT properties, virtual media's
 * parameters.txt), given in kernel form (`ipa-debug`). They only fill gaps:
 * what the kernel command line says wins.
 */
export function withOverrides(cfg: AgentConfig, params: Record<string, string>): AgentConfig {
  const next = { ...cfg };
  for (const [kname, raw] of Object.entries(params)) {
    if (cfg.kernelParams[kname] !== undefined) continue;
    const spec = (PARAMS as readonly ParamSpec[]).find((p) => (p.kernelName ?? `ipa-${p.name}`) === kname);
    if (!spec || spec.localOnly) continue;
    (next as Record<string, unknown>)[camel(spec.name)] = convert(spec, raw, 'discovered');
  }
  return next;
}

export function helpText(): string {
  const lines = [
    'metal-agent: in-band bare-metal deploy agent (drop-in for ironic-python-agent)',
    '',
    'usage: metal-agent [FLAGS]            run the agent',
    '       metal-agent inventory          print the hardware inventory as JSON',
    '       metal-agent tools              print the external tools the agent may run',
    '',
    'Every flag can also be given as a kernel parameter ipa-NAME (unless marked local)',
    'or as the environment variable METAL_AGENT_NAME. Precedence: flag > env > kernel > default.',
    '',
  ];
  for (const p of PARAMS as readonly ParamSpec[]) {
    const arg = p.kind === 'bool' ? '' : p.kind === 'int' ? ' N' : p.kind === 'list' ? ' A,B' : ' VALUE';
    const def = p.default === undefined || (Array.isArray(p.default) && p.default.length === 0) ? '' : ` [default: ${String(p.default)}]`;
    const where = p.localOnly ? ' (local)' : p.kernelName ? ` (kernel: ${p.kernelName})` : '';
    lines.push(`  --${p.name}${arg}`.padEnd(48) + `${p.help}${def}${where}`);
  }
  lines.push('  --help'.padEnd(48) + 'this text');
  return lines.join('\n');
}
