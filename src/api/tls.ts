import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import selfsigned from 'selfsigned';

export interface TlsMaterial {
  cert: string;
  key: string;
}

// IPA's auto-TLS: a self-signed certificate for the address we advertise,
// generated at start and sent to Ironic as agent_verify_ca. Ironic verifies
// the agent against exactly this certificate, so its SAN must hold the
// callback host.
export function generateSelfSigned(advertised: string): TlsMaterial {
  // A link-local address's zone (fe80::1%eth0) names our interface, not part of the address.
  const host = advertised.split('%')[0]!;
  const altName = isIP(host) ? { type: 7, ip: host } : { type: 2, value: host };
  // Node's native RSA key generation: forge's pure-JS one takes many seconds
  // on a slow (emulated) CPU, and start-up time is boot-to-heartbeat time.
  const keyPair = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  // selfsigned accepts a ready key pair, but its typings do not say so.
  const options = {
    keyPair,
    days: 3650,
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [altName] },
    ],
  } as selfsigned.SelfsignedOptions;
  const pems = selfsigned.generate([{ name: 'commonName', value: host }], options);
  // forge writes CRLF; Ironic stores the PEM and compares later heartbeats'
  // copies with what it reads back in text mode (LF), so send LF only.
  const lf = (pem: string) => pem.replace(/\r\n/g, '\n');
  return { cert: lf(pems.cert), key: lf(pems.private) };
}

export function loadTls(certfile: string, keyfile: string): TlsMaterial {
  return { cert: readFileSync(certfile, 'utf8'), key: readFileSync(keyfile, 'utf8') };
}
