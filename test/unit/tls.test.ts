import { X509Certificate, createPrivateKey } from 'node:crypto';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { AsnConvert } from '@peculiar/asn1-schema';
import { id_ecdsaWithSHA512 } from '@peculiar/asn1-ecc';
import { BasicConstraints, Certificate, KeyUsage, KeyUsageFlags, id_ce_basicConstraints, id_ce_keyUsage } from '@peculiar/asn1-x509';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../src/api/server.ts';
import { generateSelfSigned } from '../../src/api/tls.ts';
import { TokenKeeper } from '../../src/api/token.ts';
import { CommandEngine } from '../../src/commands/engine.ts';

// Issue 21: the auto-TLS certificate is what IPA makes today (EC P-384 signed
// with SHA-512, valid about a month, an end entity and not a CA, SAN = the
// callback address), and the agent's HTTPS server speaks TLS 1.2 and 1.3 only.

const DAY_MS = 86_400_000;

function parse(pem: string) {
  const x509 = new X509Certificate(pem);
  return { x509, asn: AsnConvert.parse(x509.raw, Certificate) };
}

describe('auto-TLS certificate', () => {
  it('is an EC P-384 key signed with ecdsa-with-SHA512, by itself', () => {
    const { x509, asn } = parse(generateSelfSigned('192.0.2.10').cert);
    expect(x509.publicKey.asymmetricKeyType).toBe('ec');
    expect(x509.publicKey.asymmetricKeyDetails?.namedCurve).toBe('secp384r1');
    expect(asn.signatureAlgorithm.algorithm).toBe(id_ecdsaWithSHA512);
    expect(asn.tbsCertificate.signature.algorithm).toBe(id_ecdsaWithSHA512);
    expect(x509.verify(x509.publicKey)).toBe(true);
    expect(x509.subject).toBe('CN=192.0.2.10');
  });

  it('is valid now, for at most 31 days and long enough to outlive a long cleaning', () => {
    const now = new Date('2030-05-01T12:00:00Z');
    const { x509 } = parse(generateSelfSigned('192.0.2.10', { now }).cert);
    const from = new Date(x509.validFrom).getTime();
    const to = new Date(x509.validTo).getTime();
    expect(from).toBeLessThanOrEqual(now.getTime());
    expect(to - from).toBeLessThanOrEqual(31 * DAY_MS);
    expect(to - now.getTime()).toBeGreaterThanOrEqual(29 * DAY_MS);
  });

  it('is not a CA: no CA bit, no certificate signing', () => {
    const { x509, asn } = parse(generateSelfSigned('192.0.2.10').cert);
    expect(x509.ca).toBe(false);
    const exts = asn.tbsCertificate.extensions ?? [];
    const bc = exts.find((e) => e.extnID === id_ce_basicConstraints);
    if (bc) expect(AsnConvert.parse(bc.extnValue, BasicConstraints).cA).toBe(false);
    const ku = exts.find((e) => e.extnID === id_ce_keyUsage);
    if (ku) expect(AsnConvert.parse(ku.extnValue, KeyUsage).toNumber() & KeyUsageFlags.keyCertSign).toBe(0);
  });

  it('names the callback address in its SAN (IPv4, IPv6 without the zone, a host name)', () => {
    expect(parse(generateSelfSigned('192.0.2.10').cert).x509.subjectAltName).toBe('IP Address:192.0.2.10');
    expect(parse(generateSelfSigned('fd00:1::5').cert).x509.subjectAltName).toBe('IP Address:FD00:1:0:0:0:0:0:5');
    expect(parse(generateSelfSigned('fe80::1%eth0').cert).x509.subjectAltName).toBe('IP Address:FE80:0:0:0:0:0:0:1');
    expect(parse(generateSelfSigned('agent.example.org').cert).x509.subjectAltName).toBe('DNS:agent.example.org');
  });

  it('writes PEM with LF line ends only, and a PKCS#8 key that matches', () => {
    const { cert, key } = generateSelfSigned('192.0.2.10');
    expect(cert).not.toContain('\r');
    expect(key).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))).toBe(true);
  });
});

describe("the agent's HTTPS server", () => {
  let app: FastifyInstance | undefined;
  const defaultMin = tls.DEFAULT_MIN_VERSION;
  afterEach(async () => {
    tls.DEFAULT_MIN_VERSION = defaultMin;
    await app?.close();
  });

  /** A TLS handshake pinned to one version, verifying the server against its own certificate. */
  function handshake(port: number, ca: string, version: tls.SecureVersion): Promise<string> {
    return new Promise((resolve) => {
      const socket = tls.connect(
        // SECLEVEL=0: let this client offer TLS 1.1 at all; refusing it is the server's job.
        { host: '127.0.0.1', port, ca, minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0' },
        () => {
          resolve(`ok ${socket.getProtocol()}`);
          socket.destroy();
        },
      );
      socket.on('error', (err: NodeJS.ErrnoException) => resolve(`refused ${err.code}`));
    });
  }

  it('refuses TLS 1.1 by protocol version and accepts TLS 1.2 and 1.3, verified by its certificate', async () => {
    // Node's own default floor is TLS 1.2; lower it so that the server's explicit floor is what is tested.
    tls.DEFAULT_MIN_VERSION = 'TLSv1';
    const material = generateSelfSigned('127.0.0.1');
    app = buildApi(
      { engine: new CommandEngine(), tokens: new TokenKeeper(undefined), status: () => ({ started_at: 1, version: 'v' }), steps: () => [], inventory: async () => ({}) },
      { tls: material },
    );
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as { port: number }).port;
    expect(await handshake(port, material.cert, 'TLSv1.1')).toBe('refused ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
    expect(await handshake(port, material.cert, 'TLSv1.2')).toBe('ok TLSv1.2');
    expect(await handshake(port, material.cert, 'TLSv1.3')).toBe('ok TLSv1.3');
  });
});
