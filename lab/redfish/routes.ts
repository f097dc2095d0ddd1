import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BOOT_ENABLED, BOOT_MODES, BOOT_TARGETS, RESET_TYPES, type Machine } from './machine.ts';

// The Redfish resources Ironic's redfish hardware type reads and changes
// (ironic/drivers/modules/redfish/{power,management,boot,utils}.py through
// sushy, 21.4/sushy 4.3 and 29.0/sushy 5.5): the service root, sessions,
// one ComputerSystem and one Manager (the BMC, with a virtual CD) per machine.
// Everything but the service root needs HTTP basic auth or a session token.

const V1 = '/redfish/v1';
const ref = (id: string) => ({ '@odata.id': id });

export interface Credentials {
  username: string;
  password: string;
}

function redfishError(reply: FastifyReply, status: number, message: string, code = 'Base.1.0.GeneralError') {
  return reply.code(status).send({ error: { code, message, '@Message.ExtendedInfo': [{ MessageId: code, Message: message }] } });
}

function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

function uuidOf(id: string): string {
  const h = createHash('sha256').update(`metal-agent-redfish:${id}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function registerRoutes(
  app: FastifyInstance,
  machines: Map<string, Machine>,
  creds: Credentials,
  log: (msg: string, extra?: Record<string, unknown>) => void,
): void {
  const sessions = new Map<string, string>(); // token -> session id
  let sessionSeq = 0;

  const validLogin = (user: unknown, pass: unknown) =>
    typeof user === 'string' && typeof pass === 'string' && sameSecret(user, creds.username) && sameSecret(pass, creds.password);

  // Auth before any handler: the service root (and its odata documents) is
  // open, as the standard says; creating a session checks the body instead.
  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0]!.replace(/\/+$/, '');
    if (req.method === 'GET' && (path === '/redfish' || path === V1 || path === `${V1}/odata` || path === `${V1}/$metadata`)) return;
    if (req.method === 'POST' && path === `${V1}/SessionService/Sessions`) return;
    const token = req.headers['x-auth-token'];
    if (typeof token === 'string' && sessions.has(token)) return;
    const auth = req.headers.authorization ?? '';
    const m = /^Basic\s+(\S+)$/i.exec(auth);
    if (m) {
      const text = Buffer.from(m[1]!, 'base64').toString('utf8');
      const cut = text.indexOf(':');
      if (cut >= 0 && validLogin(text.slice(0, cut), text.slice(cut + 1))) return;
    }
    log('unauthorized', { method: req.method, path, basic: Boolean(m), token: typeof token === 'string' });
    reply.header('WWW-Authenticate', 'Basic realm="metal-agent redfish emulator"');
    return redfishError(reply, 401, 'authentication required', 'Base.1.0.NoValidSession');
  });

  const machineOr404 = (req: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply, prefix = '') => {
    const id = req.params.id.startsWith(prefix) ? req.params.id.slice(prefix.length) : '';
    const m = machines.get(id);
    if (!m) void redfishError(reply, 404, `no resource ${req.url}`, 'Base.1.0.ResourceMissingAtURI');
    return m;
  };

  app.get('/redfish', async () => ({ v1: `${V1}/` }));
  app.get(V1, async () => ({
    '@odata.type': '#ServiceRoot.v1_5_0.ServiceRoot',
    '@odata.id': `${V1}/`,
    Id: 'RootService',
    Name: 'metal-agent Redfish emulator',
    RedfishVersion: '1.6.0',
    UUID: uuidOf('service-root'),
    Product: 'metal-agent qemu BMC emulator',
    Systems: ref(`${V1}/Systems`),
    Managers: ref(`${V1}/Managers`),
    SessionService: ref(`${V1}/SessionService`),
    Links: { Sessions: ref(`${V1}/SessionService/Sessions`) },
  }));

  // --- sessions (sushy tries a session first, then falls back to basic auth) ---
  app.get(`${V1}/SessionService`, async () => ({
    '@odata.type': '#SessionService.v1_1_6.SessionService',
    '@odata.id': `${V1}/SessionService`,
    Id: 'SessionService',
    Name: 'Session Service',
    ServiceEnabled: true,
    SessionTimeout: 3600,
    Sessions: ref(`${V1}/SessionService/Sessions`),
  }));
  app.get(`${V1}/SessionService/Sessions`, async () => ({
    '@odata.type': '#SessionCollection.SessionCollection',
    '@odata.id': `${V1}/SessionService/Sessions`,
    Name: 'Sessions',
    'Members@odata.count': sessions.size,
    Members: [...sessions.values()].map((s) => ref(`${V1}/SessionService/Sessions/${s}`)),
  }));
  app.post<{ Body: { UserName?: unknown; Password?: unknown } }>(`${V1}/SessionService/Sessions`, async (req, reply) => {
    if (!validLogin(req.body?.UserName, req.body?.Password)) {
      log('session refused', { user: typeof req.body?.UserName === 'string' ? req.body.UserName : null });
      return redfishError(reply, 401, 'invalid user name or password', 'Base.1.0.NoValidSession');
    }
    const id = String(++sessionSeq);
    const token = randomBytes(24).toString('hex');
    sessions.set(token, id);
    const location = `${V1}/SessionService/Sessions/${id}`;
    reply.code(201).header('X-Auth-Token', token).header('Location', location);
    return { '@odata.id': location, '@odata.type': '#Session.v1_1_0.Session', Id: id, Name: 'Session', UserName: creds.username };
  });
  app.get<{ Params: { sid: string } }>(`${V1}/SessionService/Sessions/:sid`, async (req, reply) => {
    if (![...sessions.values()].includes(req.params.sid)) return redfishError(reply, 404, 'no such session', 'Base.1.0.ResourceMissingAtURI');
    return { '@odata.id': `${V1}/SessionService/Sessions/${req.params.sid}`, Id: req.params.sid, Name: 'Session', UserName: creds.username };
  });
  app.delete<{ Params: { sid: string } }>(`${V1}/SessionService/Sessions/:sid`, async (req, reply) => {
    for (const [t, s] of sessions) if (s === req.params.sid) sessions.delete(t);
    return reply.code(204).send();
  });

  // --- systems ---
  app.get(`${V1}/Systems`, async () => ({
    '@odata.type': '#ComputerSystemCollection.ComputerSystemCollection',
    '@odata.id': `${V1}/Systems`,
    Name: 'Computer System Collection',
    'Members@odata.count': machines.size,
    Members: [...machines.keys()].map((id) => ref(`${V1}/Systems/${id}`)),
  }));

  const systemJson = (m: Machine) => {
    const id = m.spec.id;
    return {
      '@odata.type': '#ComputerSystem.v1_10_0.ComputerSystem',
      '@odata.id': `${V1}/Systems/${id}`,
      Id: id,
      Name: id,
      UUID: uuidOf(id),
      Manufacturer: 'QEMU',
      Model: 'Standard PC (Q35 + ICH9, 2009)',
      SystemType: 'Physical',
      PowerState: m.powerState,
      Status: { State: 'Enabled', Health: 'OK' },
      IndicatorLED: 'Off',
      MemorySummary: { TotalSystemMemoryGiB: (m.spec.memoryMiB ?? 512) / 1024, Status: { State: 'Enabled', Health: 'OK' } },
      ProcessorSummary: { Count: 1, Status: { State: 'Enabled', Health: 'OK' } },
      Boot: {
        BootSourceOverrideTarget: m.boot.target,
        BootSourceOverrideEnabled: m.boot.enabled,
        BootSourceOverrideMode: m.boot.mode,
        'BootSourceOverrideTarget@Redfish.AllowableValues': [...BOOT_TARGETS],
        'BootSourceOverrideMode@Redfish.AllowableValues': [...BOOT_MODES],
      },
      Links: { ManagedBy: [ref(`${V1}/Managers/bmc-${id}`)] },
      Actions: {
        '#ComputerSystem.Reset': {
          target: `${V1}/Systems/${id}/Actions/ComputerSystem.Reset`,
          'ResetType@Redfish.AllowableValues': [...RESET_TYPES],
        },
      },
    };
  };

  app.get<{ Params: { id: string } }>(`${V1}/Systems/:id`, async (req, reply) => {
    const m = machineOr404(req, reply);
    return m ? systemJson(m) : reply;
  });

  app.patch<{ Params: { id: string }; Body: { Boot?: Record<string, unknown> } }>(`${V1}/Systems/:id`, async (req, reply) => {
    const m = machineOr404(req, reply);
    if (!m) return reply;
    const boot = req.body?.Boot ?? {};
    const checks: Array<[string, readonly string[]]> = [
      ['BootSourceOverrideTarget', BOOT_TARGETS],
      ['BootSourceOverrideEnabled', BOOT_ENABLED],
      ['BootSourceOverrideMode', BOOT_MODES],
    ];
    // All checked before any is applied: a refused PATCH changes nothing.
    for (const [key, allowed] of checks) {
      const v = boot[key];
      if (v !== undefined && !(typeof v === 'string' && allowed.includes(v))) {
        return redfishError(reply, 400, `${key} ${JSON.stringify(v)} is not one of ${allowed.join(', ')}`, 'Base.1.0.PropertyValueNotInList');
      }
    }
    for (const key of Object.keys(req.body ?? {})) {
      if (key !== 'Boot' && key !== 'IndicatorLED') return redfishError(reply, 400, `property ${key} is read-only or unknown`, 'Base.1.0.PropertyNotWritable');
    }
    if (boot.BootSourceOverrideTarget !== undefined) m.boot.target = boot.BootSourceOverrideTarget as typeof m.boot.target;
    if (boot.BootSourceOverrideEnabled !== undefined) m.boot.enabled = boot.BootSourceOverrideEnabled as typeof m.boot.enabled;
    if (boot.BootSourceOverrideMode !== undefined) m.boot.mode = boot.BootSourceOverrideMode as typeof m.boot.mode;
    log('boot set', { system: m.spec.id, patch: boot, now: m.boot });
    return reply.code(204).send();
  });

  app.post<{ Params: { id: string }; Body: { ResetType?: unknown } }>(`${V1}/Systems/:id/Actions/ComputerSystem.Reset`, async (req, reply) => {
    const m = machineOr404(req, reply);
    if (!m) return reply;
    const type = req.body?.ResetType;
    if (!(typeof type === 'string' && (RESET_TYPES as readonly string[]).includes(type))) {
      return redfishError(reply, 400, `ResetType ${JSON.stringify(type)} is not one of ${RESET_TYPES.join(', ')}`, 'Base.1.0.ActionParameterNotSupported');
    }
    try {
      await m.reset(type as (typeof RESET_TYPES)[number]);
    } catch (err) {
      return redfishError(reply, 500, `reset ${type} failed: ${String(err)}`);
    }
    return reply.code(204).send();
  });

  // --- managers and virtual media ---
  app.get(`${V1}/Managers`, async () => ({
    '@odata.type': '#ManagerCollection.ManagerCollection',
    '@odata.id': `${V1}/Managers`,
    Name: 'Manager Collection',
    'Members@odata.count': machines.size,
    Members: [...machines.keys()].map((id) => ref(`${V1}/Managers/bmc-${id}`)),
  }));

  app.get<{ Params: { id: string } }>(`${V1}/Managers/:id`, async (req, reply) => {
    const m = machineOr404(req, reply, 'bmc-');
    if (!m) return reply;
    const base = `${V1}/Managers/bmc-${m.spec.id}`;
    return {
      '@odata.type': '#Manager.v1_10_0.Manager',
      '@odata.id': base,
      Id: `bmc-${m.spec.id}`,
      Name: `BMC of ${m.spec.id}`,
      ManagerType: 'BMC',
      FirmwareVersion: '1.0.0',
      UUID: uuidOf(`bmc-${m.spec.id}`),
      Status: { State: 'Enabled', Health: 'OK' },
      VirtualMedia: ref(`${base}/VirtualMedia`),
      Links: { ManagerForServers: [ref(`${V1}/Systems/${m.spec.id}`)] },
    };
  });

  app.get<{ Params: { id: string } }>(`${V1}/Managers/:id/VirtualMedia`, async (req, reply) => {
    const m = machineOr404(req, reply, 'bmc-');
    if (!m) return reply;
    const base = `${V1}/Managers/bmc-${m.spec.id}/VirtualMedia`;
    return {
      '@odata.type': '#VirtualMediaCollection.VirtualMediaCollection',
      '@odata.id': base,
      Name: 'Virtual Media Services',
      'Members@odata.count': 1,
      Members: [ref(`${base}/Cd`)],
    };
  });

  app.get<{ Params: { id: string; vm: string } }>(`${V1}/Managers/:id/VirtualMedia/:vm`, async (req, reply) => {
    const m = machineOr404(req, reply, 'bmc-');
    if (!m) return reply;
    if (req.params.vm !== 'Cd') return redfishError(reply, 404, `no resource ${req.url}`, 'Base.1.0.ResourceMissingAtURI');
    const base = `${V1}/Managers/bmc-${m.spec.id}/VirtualMedia/Cd`;
    return {
      '@odata.type': '#VirtualMedia.v1_4_0.VirtualMedia',
      '@odata.id': base,
      Id: 'Cd',
      Name: 'Virtual CD',
      MediaTypes: ['CD', 'DVD'],
      Image: m.cd.image,
      ImageName: m.cd.image ? m.cd.image.split('/').pop() : null,
      Inserted: m.cd.inserted,
      WriteProtected: m.cd.writeProtected,
      ConnectedVia: m.cd.inserted ? 'URI' : 'NotConnected',
      TransferMethod: 'Upload',
      Actions: {
        '#VirtualMedia.InsertMedia': { target: `${base}/Actions/VirtualMedia.InsertMedia` },
        '#VirtualMedia.EjectMedia': { target: `${base}/Actions/VirtualMedia.EjectMedia` },
      },
    };
  });

  app.post<{ Params: { id: string; vm: string }; Body: { Image?: unknown; Inserted?: unknown; WriteProtected?: unknown } }>(
    `${V1}/Managers/:id/VirtualMedia/:vm/Actions/VirtualMedia.InsertMedia`,
    async (req, reply) => {
      const m = machineOr404(req, reply, 'bmc-');
      if (!m) return reply;
      if (req.params.vm !== 'Cd') return redfishError(reply, 404, `no resource ${req.url}`, 'Base.1.0.ResourceMissingAtURI');
      const image = req.body?.Image;
      if (typeof image !== 'string' || !/^https?:\/\//.test(image)) {
        return redfishError(reply, 400, 'Image must be an http(s) URL', 'Base.1.0.ActionParameterValueFormatError');
      }
      if (m.cd.inserted) return redfishError(reply, 409, `a medium (${m.cd.image}) is inserted: eject it first`, 'Base.1.0.ResourceInUse');
      try {
        await m.insertMedia(image, { inserted: req.body?.Inserted !== false, writeProtected: req.body?.WriteProtected !== false });
      } catch (err) {
        return redfishError(reply, 500, `InsertMedia failed: ${String(err)}`);
      }
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { id: string; vm: string } }>(`${V1}/Managers/:id/VirtualMedia/:vm/Actions/VirtualMedia.EjectMedia`, async (req, reply) => {
    const m = machineOr404(req, reply, 'bmc-');
    if (!m) return reply;
    if (req.params.vm !== 'Cd') return redfishError(reply, 404, `no resource ${req.url}`, 'Base.1.0.ResourceMissingAtURI');
    await m.ejectMedia();
    return reply.code(204).send();
  });
}
