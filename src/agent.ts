import { readFileSync } from 'node:fs';
import type { Server as TlsServer } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { buildApi } from './api/server.ts';
import { applyServedTls, generateSelfSigned, loadTls, servedTls, type TlsMaterial } from './api/tls.ts';
import { isUsableToken, TokenKeeper, type TokenOffer } from './api/token.ts';
import { CommandEngine } from './commands/engine.ts';
import { collectSystemLogs, registerExtensions } from './commands/extensions/index.ts';
import type { CommandHost } from './commands/extensions/index.ts';
import { splitApiUrls } from './base/api-urls.ts';
import { withOverrides, type AgentConfig } from './config.ts';
import { hostForUrl, localAddressTowards, lookupMacs } from './conductor/addresses.ts';
import { ConductorClient, inspectionReply, type LookupResult } from './conductor/client.ts';
import { collectInspectionData, collectorNames } from './hardware/inspection-collectors.ts';
import type { Inventory } from './hardware/inventory.ts';
import { postInspectionWithRetry } from './conductor/inspection-post.ts';
import { ConductorSession } from './conductor/session.ts';
import { discoverConductor } from './conductor/mdns.ts';
import { splitZone } from './base/url-zone.ts';
import { fullGc } from './base/full-gc.ts';
import { classifyIp } from './system/network/addresses.ts';
import { prepareDhcpLessNetwork } from './system/network/bring-up.ts';
import { namedNetns } from './system/network/guard.ts';
import { HardwareView } from './hardware-view.ts';
import { NodeSession, type AgentStatus } from './node-session.ts';
import { log, setDebug } from './log.ts';
import { Guard, runningInRamdisk } from './system/safety.ts';
import { AGENT_VERSION } from './version.ts';
import { ALL_STEPS, StepRegistry } from '../steps/index.ts';
import type { DeployState } from './base/deploy-state.ts';

// The lifecycle: bring-up (the final config) -> serve -> lookup -> heartbeat
// -> (hand off). The agent owns the token and the node session; the pieces it
// wires together do the I/O.

export type { AgentStatus } from './node-session.ts';

/** What start() builds once the config is final. */
interface Wired {
  tokens: TokenKeeper;
  hardware: HardwareView;
}

export class Agent implements CommandHost {
  readonly startedAt = Date.now() / 1000;
  readonly guard: Guard;
  readonly engine = new CommandEngine();
  readonly registry = new StepRegistry(ALL_STEPS);
  private wired: Wired | undefined;
  private server: FastifyInstance | undefined;
  private session: ConductorSession | undefined;
  private client: ConductorClient | undefined;
  private tls: TlsMaterial | undefined;
  private callbackUrl = '';
  /** What the agent knows of the node for the current token (replaced whole by a new token). */
  private nodeSession = new NodeSession();
  /** The boot config until start() resolves the final one (virtual media, mDNS); frozen either way. */
  private config: Readonly<AgentConfig>;

  constructor(config: AgentConfig) {
    this.config = frozen(config);
    setDebug(config.debug);
    const inRamdisk = runningInRamdisk();
    // Built from the boot config: the DHCP-less bring-up asks it whether this is a
    // ramdisk. allowed-devices and allow-power-actions are local-only settings
    // (withOverrides never changes them), so the final config would build the same guard.
    this.guard = new Guard({ inRamdisk, allowedDevices: config.allowedDevices, allowPowerActions: config.allowPowerActions });
    if (!inRamdisk) {
      log.warn(
        { allowedDevices: config.allowedDevices, powerActions: config.allowPowerActions ? 'real' : 'dry run' },
        'not running in a ramdisk: only the allowed devices will be written',
      );
    }
    registerExtensions(this.engine, this);
    this.engine.on('finished', (result, wasAsync) => {
      if (!wasAsync) return;
      this.nodeSession.agentStatus = result.command_status === 'FAILED' ? 'error' : 'end';
      this.session?.heartbeatNow();
      // A long command (a write, an erase, a step) is over: its buffers go back to the system now,
      // not at some later GC, so a node idling in a fast-track pool is back at its idle size.
      setImmediate(() => giveMemoryBack(`command ${result.command_name}`));
    });
  }

  private get built(): Wired {
    if (!this.wired) throw new Error('the agent is not started: the config is not final yet');
    return this.wired;
  }

  get tokens(): TokenKeeper {
    return this.built.tokens;
  }

  get hardware(): HardwareView {
    return this.built.hardware;
  }

  get options(): Readonly<AgentConfig> {
    return this.config;
  }

  get node(): Record<string, any> | undefined {
    return this.nodeSession.node;
  }

  get lookupConfig(): Readonly<Record<string, any>> {
    return this.nodeSession.lookupConfig;
  }

  get deployState(): DeployState {
    return this.nodeSession.deployState;
  }

  get lastCommandNode(): Record<string, any> | undefined {
    return this.nodeSession.lastCommandNode;
  }

  set lastCommandNode(node: Record<string, any> | undefined) {
    this.nodeSession.lastCommandNode = node;
  }

  private cafilePem?: string;

  /** ipa-cafile's PEM, read once: image downloads are verified with it too. */
  cafileContents(): string | undefined {
    if (this.config.cafile && this.cafilePem === undefined) this.cafilePem = readFileSync(this.config.cafile, 'utf8');
    return this.cafilePem;
  }

  /**
   * The token in a lookup's answer (see TokenKeeper.offer). Returns whether
   * heartbeats can go out: with a token, or when Ironic neither gave nor
   * requires one. Ironic's "******" means it holds a token for this node that
   * it will not hand out again: a virtual-media boot that has it already, or
   * a restarted agent that lost it. The latter stays token-less (Ironic
   * refuses its heartbeats) until Ironic wipes that token and issues a new one.
   */
  private takeLookupToken(lookup: LookupResult): boolean {
    const config = lookup.config ?? {};
    const offered: unknown = config.agent_token;
    const verdict: TokenOffer = this.tokens.offer(typeof offered === 'string' ? offered : undefined, 'lookup');
    const held = this.tokens.value !== undefined;
    if (verdict === 'replaced') {
      log.info('new agent token: starting a fresh session (command history, deploy state and kexec handoff cleared)');
      this.engine.resetHistory();
      this.nodeSession = new NodeSession(lookup.node, config);
    } else {
      // The same token (or none): the same session, with the node and config of this lookup.
      this.nodeSession.lookedUp(lookup.node, config);
    }
    if (verdict === 'placeholder') {
      if (held) {
        log.info('lookup answered "******" (Ironic handed our token out before): keeping the token we hold');
      } else {
        log.warn(
          'lookup answered "******": Ironic holds a token for this node that we do not know (a restarted agent?); ' +
            'no commands are accepted and no heartbeats sent until Ironic issues a new one',
        );
      }
    }
    if (held) return true;
    return verdict === 'absent' && config.agent_token_required !== true;
  }

  /**
   * What Ironic 2026.2's lookup asks besides the token (IPA 13's process_lookup_data):
   * the HTTPS server's lowest TLS version and TLS 1.2 suites, and whether to
   * probe the BMC for the inventory.
   */
  private applyLookupSettings(config: Record<string, any>): void {
    if (typeof config.agent_skip_bmc_detect === 'boolean' && config.agent_skip_bmc_detect !== this.hardware.skipBmcDetect) {
      this.hardware.skipBmcDetect = config.agent_skip_bmc_detect;
      log.info({ skip: config.agent_skip_bmc_detect }, 'BMC detection in the inventory, as the conductor asks');
    }
    if (!this.tls || !this.server || !('tls_min_version' in config || 'tls_cipher_suites' in config)) return;
    const { tls, ignored } = servedTls(config);
    if (ignored.length) log.warn({ ignored }, 'conductor TLS settings not applied');
    try {
      applyServedTls(this.server.server as unknown as TlsServer, this.tls, tls);
      log.info({ minVersion: tls.minVersion, ciphers: tls.ciphers }, 'serving TLS as the conductor asks');
    } catch (err) {
      log.warn({ err: (err as Error).message, asked: config.tls_cipher_suites }, 'conductor TLS cipher list refused: TLS left as it was');
    }
  }

  /** The node as last sent by Ironic (with a command) or learnt at lookup. */
  lastNode(): Record<string, any> {
    return this.nodeSession.lastNode();
  }

  /** Progress shown in Ironic (agent_status_message) with the next heartbeat. */
  progress(message: string): void {
    this.nodeSession.statusMessage = message.slice(0, 250);
    this.nodeSession.agentStatus = 'start';
    log.info({ progress: message }, 'progress');
  }

  status() {
    return { started_at: this.startedAt, version: AGENT_VERSION };
  }

  async start(): Promise<void> {
    this.config = frozen(await this.bringUp(this.config));
    setDebug(this.config.debug);
    this.wired = {
      tokens: new TokenKeeper(this.config.agentToken, { standalone: this.config.standalone }),
      hardware: new HardwareView(this.guard, this.config),
    };
    await this.hardware.waitForRootDisk();
    const advertiseHost = await this.advertiseHost();
    // Ironic checks an auto-TLS certificate against the callback host; for a
    // scoped link-local one (fe80::..%eth0) its HTTP client never matches (a
    // certificate's IP has no zone), so auto-TLS would only break every command.
    const scoped = advertiseHost.includes('%');
    if (scoped && this.config.enableAutoTls && !this.config.listenTls && !this.config.insecure) {
      log.warn(
        { advertiseHost },
        'auto-TLS off: the callback address is link-local, which no certificate Ironic can verify names; ' +
          'commands still need the agent token',
      );
    }
    const useTls = this.config.listenTls || (this.config.enableAutoTls && !this.config.insecure && !scoped);
    if (useTls) {
      this.tls = this.config.listenTls ? loadTls(this.config.certfile!, this.config.keyfile!) : generateSelfSigned(advertiseHost);
    }
    const protocol = useTls ? 'https' : this.config.advertiseProtocol;
    this.callbackUrl = `${protocol}://${hostForUrl(advertiseHost)}:${this.config.advertisePort}`;

    this.server = buildApi(
      {
        engine: this.engine,
        tokens: this.tokens,
        status: () => this.status(),
        steps: () => ({ steps: this.registry.matrix() }),
        inventory: () => this.hardware.inventory(),
      },
      { tls: this.tls, requestTimeoutMs: this.config.apiRequestTimeout * 1000 },
    );
    await this.server.listen({ host: this.config.listenHost, port: this.config.listenPort });
    const listen = `${this.config.listenHost}:${this.config.listenPort}`;
    log.info({ listen, callbackUrl: this.callbackUrl, tls: useTls, version: AGENT_VERSION }, 'API listening');

    if (this.config.standalone) {
      if (this.config.inspectionCallbackUrl) void this.inspect();
      if (!this.tokens.value) {
        log.warn('STANDALONE: no lookup, no agent token: every command is accepted from anyone who can reach this port');
      }
      setImmediate(() => giveMemoryBack('start-up'));
      return;
    }
    // IPA's order: inspection first (an unknown node has no port to be looked up by until
    // inspection, or discovery, makes one), then lookup and heartbeats.
    const inspected = this.config.inspectionCallbackUrl ? await this.inspect() : {};
    if (this.config.apiUrl === undefined) {
      // An inspection boot without fast track: Ironic powers the node off when it has the data.
      log.info(
        { node: inspected.uuid },
        'no ipa-api-url: no lookup and no heartbeats after inspection; serving the API and waiting (the agent powers nothing off)',
      );
      setImmediate(() => giveMemoryBack('start-up'));
      return;
    }

    this.client = new ConductorClient({
      apiUrl: this.config.apiUrl!,
      apiVersion: this.config.lookupApiVersion,
      insecure: this.config.insecure,
      cafile: this.config.cafile,
      globalRequestId: this.config.globalRequestId,
    });
    const macs = lookupMacs({ bootif: this.config.bootif, onlyInterface: this.config.networkInterface });
    this.session = new ConductorSession({
      client: this.client,
      macs,
      nodeUuid: this.config.nodeUuid ?? inspected.uuid,
      lookupTimeoutSec: this.config.lookupTimeout,
      lookupIntervalSec: this.config.lookupInterval,
      token: () => this.tokens.value,
      onLookup: (r) => {
        // What the conductor asks of us (features and switches differ by release); never the token.
        const { agent_token: _token, ...shown } = r.config ?? {};
        log.info({ config: shown }, 'conductor config from lookup');
        this.applyLookupSettings(r.config ?? {});
        return this.takeLookupToken(r);
      },
      heartbeatBody: () => ({
        callback_url: this.callbackUrl,
        agent_version: AGENT_VERSION,
        ...(this.tls ? { agent_verify_ca: this.tls.cert } : {}),
        ...(this.nodeSession.agentStatus ? { agent_status: this.nodeSession.agentStatus } : {}),
        ...(this.nodeSession.statusMessage ? { agent_status_message: this.nodeSession.statusMessage } : {}),
      }),
    });
    if (inspected.lookup) {
      // Ironic >= 1.84 answered the inspection like a lookup: that node, that token; no lookup needed.
      log.info({ node: inspected.lookup.node.uuid }, 'inspection answer names the node and holds its token: heartbeating without a lookup');
      this.session.adopt(inspected.lookup);
    } else {
      await this.session.lookup(this.config.lookupTimeout);
    }
    void this.session.heartbeatLoop();
    setImmediate(() => giveMemoryBack('start-up'));
  }

  /**
   * The bring-up phase: what a DHCP-less boot's virtual media (parameters.txt)
   * and mDNS discovery add to the boot config. Nothing that reads the config
   * is built before it ends, so their settings reach everything.
   */
  private async bringUp(boot: Readonly<AgentConfig>): Promise<AgentConfig> {
    let config: AgentConfig = { ...boot };
    if (config.apiUrl === 'mdns' || config.kernelParams.boot_method === 'vmedia') {
      const vmediaParams = await this.prepareNetwork(config);
      if (vmediaParams) config = withVirtualMediaParams(config, vmediaParams);
    }
    if (config.apiUrl === 'mdns') {
      const found = await discoverConductor({ timeoutMs: config.lookupTimeout * 1000 });
      log.info({ url: found.url, params: found.params, ignored: found.ignoredParams }, 'conductor discovered over mDNS');
      config = withOverrides({ ...config, apiUrl: found.url }, found.params);
    }
    return config;
  }

  /** DHCP-less boots: static config from virtual media, SLAAC, and a usable address before discovery. Returns parameters.txt. */
  private async prepareNetwork(config: Readonly<AgentConfig>): Promise<Record<string, string> | undefined> {
    if (!this.guard.opts.inRamdisk && !namedNetns()) {
      log.warn('DHCP-less network bring-up skipped: not in a ramdisk or a test namespace (this machine\'s network is left alone)');
      return undefined;
    }
    const ready = await prepareDhcpLessNetwork({
      cmdline: config.cmdlineText,
      timeoutMs: config.lookupTimeout * 1000,
      interfaces: config.networkInterface ? [config.networkInterface] : undefined,
    });
    return ready.vmediaParams;
  }

  private async advertiseHost(): Promise<string> {
    if (this.config.advertiseHost) return this.config.advertiseHost;
    if (!this.config.apiUrl || this.config.apiUrl === 'mdns') return '127.0.0.1';
    // A link-local conductor (http://[fe80::1%25eth0]:6385): WHATWG URLs have no
    // zone, so it is split off and given back to the socket that picks our address.
    // Of several API URLs, the first one says which of our addresses Ironic reaches.
    const { url, zone } = splitZone(splitApiUrls(this.config.apiUrl)[0]!);
    const u = new URL(url);
    const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
    const host = decodeURIComponent(u.hostname).replace(/^\[|\]$/g, '');
    const local = await localAddressTowards(zone ? `${host}%${zone}` : host, port);
    // Our own link-local address is only usable with the same interface's zone.
    return zone && !local.includes('%') && classifyIp(local) === 'link-local' ? `${local}%${zone}` : local;
  }

  /**
   * Collects the inspection data (ipa-inspection-collectors) and POSTs it to
   * ipa-inspection-callback-url, retrying as IPA does. Never throws: a failed
   * inspection is logged and the agent goes on (to lookup, when it has an API URL).
   */
  private async inspect(): Promise<{ lookup?: LookupResult; uuid?: string }> {
    const url = this.config.inspectionCallbackUrl!;
    const client = new ConductorClient({
      apiUrl: url,
      apiVersion: this.config.lookupApiVersion,
      insecure: this.config.insecure,
      cafile: this.config.cafile,
      globalRequestId: this.config.globalRequestId,
    });
    try {
      const names = collectorNames(this.config.inspectionCollectors);
      log.info({ url, collectors: names }, 'inspection: collecting');
      const payload = await collectInspectionData(names, {
        inventory: async () => (await this.hardware.inventory()) as Inventory,
        logs: () => collectSystemLogs({ inventory: () => this.hardware.inventory(), commands: () => this.engine.list() }),
        lldpTimeoutSec: this.config.lldpTimeout,
      });
      const res = await postInspectionWithRetry(client, url, payload);
      if (!res.ok) return {};
      const reply = inspectionReply(res.body);
      log.info({ status: res.status, node: reply.uuid, lookupShaped: reply.lookup !== undefined }, 'inspection data sent');
      return reply;
    } catch (err) {
      log.error({ err: (err as Error).message }, 'inspection failed');
      return {};
    } finally {
      await client.close();
    }
  }

  /** Quiesce: a last heartbeat, then stop heartbeats and the API. */
  async quiesce(): Promise<void> {
    this.session?.heartbeatNow();
    // Let the woken loop start that heartbeat before it is told to stop (it checks `stopped` first).
    await new Promise((resolve) => setImmediate(resolve));
    this.session?.stop();
    await this.server?.close();
  }

  async stop(): Promise<void> {
    this.engine.abortRunning();
    this.session?.stop();
    await this.server?.close();
    await this.client?.close();
  }
}

/**
 * parameters.txt from virtual media: its settings, and the token Ironic
 * pre-generated for this boot. A usable token given at boot wins over it.
 */
function withVirtualMediaParams(boot: Readonly<AgentConfig>, params: Record<string, string>): AgentConfig {
  const config = withOverrides(boot, params);
  if (!config.agentToken || config.agentToken === boot.agentToken) return config;
  if (isUsableToken(boot.agentToken)) {
    log.warn('virtual media carries an agent token different from the one given at boot: keeping the one given at boot');
    return { ...config, agentToken: boot.agentToken };
  }
  if (isUsableToken(config.agentToken)) log.info('agent token taken from virtual media');
  return config;
}

/** A read-only copy of a config: its lists and maps too (nothing below them is nested). */
function frozen(config: AgentConfig): Readonly<AgentConfig> {
  const copy: Record<string, unknown> = { ...config };
  for (const [key, value] of Object.entries(copy)) {
    if (Array.isArray(value)) copy[key] = Object.freeze([...value]);
    else if (value && typeof value === 'object') copy[key] = Object.freeze({ ...value });
  }
  return Object.freeze(copy) as Readonly<AgentConfig>;
}

/**
 * A full GC at the two moments an agent's heap holds the most garbage: start-up done (module
 * loading, TLS, lookup), and a long command (a write, an erase, a step) over. Idle, the agent
 * allocates too little for V8 to collect on its own, so RSS would keep that garbage until the next
 * command; a node idling in a fast-track pool, or about to write an image, is back at its idle size.
 */
function giveMemoryBack(after: string): void {
  const ms = fullGc();
  log.debug({ after, gcMs: Math.round(ms) }, 'memory given back');
}
