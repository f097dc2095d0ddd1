import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { SecureContextOptions, Server as TlsServer } from 'node:tls';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { ecdsaWithSHA512 } from '@peculiar/asn1-ecc';
import {
  AttributeTypeAndValue,
  AttributeValue,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  Extension,
  Extensions,
  GeneralName,
  Name,
  RelativeDistinguishedName,
  SubjectAlternativeName,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_subjectAltName,
  id_kp_serverAuth,
} from '@peculiar/asn1-x509';

// IPA's auto-TLS: a self-signed certificate for the address we advertise,
// generated at start and sent to Ironic as agent_verify_ca. Ironic verifies
// the agent against exactly this certificate, so its SAN must hold the
// callback host. Like current IPA (tls_utils.py): an EC P-384 key, signed
// with SHA-512, valid for 30 days from an hour ago (clock skew between the
// node and the conductor). It is an end-entity certificate, not a CA: the
// key cannot vouch for any other certificate, even to a client that trusts
// it. OpenSSL (Ironic's requests, Node) accepts a self-signed leaf in its
// trust bundle as the anchor for itself.
//
// The ASN.1 structures come from @peculiar/asn1-x509; Node's crypto makes the
// key and the signature (synchronously: start-up needs it before serving).

const OID_COMMON_NAME = '2.5.4.3';
const VALID_DAYS = 30;
const CLOCK_SKEW_SECONDS = 3600;

/** TLS 1.3's suites: always on (IPA: "TLS 1.3 cipher suites are automatically selected by the TLS library"). */
const TLS13_SUITES = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256';
/** IPA 13's default TLS 1.2 suites (config.py tls_cipher_suites): forward secret AEAD only. */
const TLS12_DEFAULT_SUITES = 'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256';

export type ServedTls = Required<Pick<SecureContextOptions, 'minVersion' | 'maxVersion' | 'ciphers'>>;

/** Served TLS by default: 1.3 offered, nothing older than 1.2 (IPA 11.6+). */
export const TLS_SERVER_OPTIONS: ServedTls = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', ciphers: `${TLS13_SUITES}:${TLS12_DEFAULT_SUITES}` };

/**
 * What the conductor asks of the agent's HTTPS server at lookup (Ironic 2026.2,
 * api/controllers/v1/ramdisk.py config()): tls_min_version is [agent]tls_minimum_version,
 * "1.2" or "1.3" (default "1.3"); tls_cipher_suites is [agent]tls_ciphers, an OpenSSL cipher
 * list for TLS 1.2, or null. IPA 13 applies both (agent.py process_lookup_data). Never below
 * 1.2, whatever is asked: an older or unknown version keeps the default, and says so.
 */
export function servedTls(conductor: { tls_min_version?: unknown; tls_cipher_suites?: unknown }): { tls: ServedTls; ignored: string[] } {
  const tls = { ...TLS_SERVER_OPTIONS };
  const ignored: string[] = [];
  const asked = conductor.tls_min_version;
  if (asked !== undefined && asked !== null && asked !== '') {
    const version = String(asked).replace(/^TLSv?/i, '');
    if (version === '1.3') tls.minVersion = 'TLSv1.3';
    else if (version !== '1.2') ignored.push(`tls_min_version ${JSON.stringify(asked)} (never below TLS 1.2)`);
  }
  const suites = conductor.tls_cipher_suites;
  if (typeof suites === 'string' && suites.trim()) {
    const given = suites.trim();
    // A TLS 1.2 list alone would switch TLS 1.3 off in OpenSSL's terms for Node: its suites stay.
    tls.ciphers = /(^|:)TLS_/.test(given) ? given : `${TLS13_SUITES}:${given}`;
  } else if (suites !== undefined && suites !== null && suites !== '') {
    ignored.push(`tls_cipher_suites ${JSON.stringify(suites)} (not a cipher list)`);
  }
  return { tls, ignored };
}

export interface TlsMaterial {
  cert: string;
  key: string;
}

export interface SelfSignedOptions {
  /** Start of validity (default: now). */
  now?: Date;
}

export function generateSelfSigned(advertised: string, opts: SelfSignedOptions = {}): TlsMaterial {
  // A link-local address's zone (fe80::1%eth0) names our interface, not part of the address.
  const host = advertised.split('%')[0]!;
  const altName = isIP(host) ? new GeneralName({ iPAddress: host }) : new GeneralName({ dNSName: host });
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const now = opts.now ?? new Date();
  const name = new Name([
    new RelativeDistinguishedName([
      new AttributeTypeAndValue({ type: OID_COMMON_NAME, value: new AttributeValue({ utf8String: host }) }),
    ]),
  ]);
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: randomSerial(),
    signature: ecdsaWithSHA512,
    issuer: name,
    subject: name,
    validity: new Validity({
      notBefore: new Date(now.getTime() - CLOCK_SKEW_SECONDS * 1000),
      notAfter: new Date(now.getTime() + VALID_DAYS * 86_400_000),
    }),
    subjectPublicKeyInfo: AsnConvert.parse(publicKey.export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo),
    extensions: new Extensions([
      extension(id_ce_subjectAltName, true, new SubjectAlternativeName([altName])),
      extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: false })),
      extension(id_ce_extKeyUsage, false, new ExtendedKeyUsage([id_kp_serverAuth])),
    ]),
  });
  const certificate = new Certificate({
    tbsCertificate: tbs,
    signatureAlgorithm: ecdsaWithSHA512,
    signatureValue: toArrayBuffer(signTbs(tbs, privateKey)),
  });
  return {
    cert: pem('CERTIFICATE', Buffer.from(AsnConvert.serialize(certificate))),
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

function signTbs(tbs: TBSCertificate, key: KeyObject): Buffer {
  // ECDSA in X.509 is the DER SEQUENCE { r, s }, Node's default encoding for EC keys.
  return sign('sha512', Buffer.from(AsnConvert.serialize(tbs)), key);
}

function extension(id: string, critical: boolean, value: unknown): Extension {
  return new Extension({ extnID: id, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
}

/** 16 random bytes, a positive DER INTEGER with no leading zero byte (RFC 5280: at most 20 octets). */
function randomSerial(): ArrayBuffer {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return toArrayBuffer(bytes);
}

function toArrayBuffer(b: Buffer): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** PEM with LF line ends: Ironic compares later heartbeats' copies with what it stored. */
function pem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g)!;
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export function loadTls(certfile: string, keyfile: string): TlsMaterial {
  return { cert: readFileSync(certfile, 'utf8'), key: readFileSync(keyfile, 'utf8') };
}

/**
 * Serves `tls` from now on (new connections; open ones keep theirs). A cipher
 * list OpenSSL rejects leaves the server as it was, and throws.
 */
export function applyServedTls(server: TlsServer, material: TlsMaterial, tls: ServedTls): void {
  server.setSecureContext({ cert: material.cert, key: material.key, ...tls });
}
