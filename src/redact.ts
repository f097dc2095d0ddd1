// Secrets out of everything a third party can read. With Ironic 21.4, command
// results (errors, collect_system_logs' tarball) can be read without the agent
// token, as IPA 9.4 allows, and logs are shipped off the node. What they quote
// can hold: the agent token (`ipa-agent-token=` on a virtual-media boot's kernel
// command line), image and config drive URLs with `user:pass@` or a signed
// query (Swift's temp_url_sig, S3's X-Amz-Signature/X-Amz-Credential, Azure's
// sig), Authorization headers, passwords. One place decides what is a secret,
// and the logger, the log collection, command errors and every message that
// formats a URL go through it. The secret's name stays, its value becomes ***.

export const MASK = '***';

/** A parameter or key name whose value is a secret (agent_token, temp_url_sig, X-Amz-Signature, password...). */
export function isSecretName(name: string): boolean {
  const n = name.toLowerCase();
  return (
    n.includes('token') ||
    n.includes('passw') ||
    n.includes('secret') ||
    n.includes('credential') ||
    n.includes('signature') ||
    n === 'authorization' ||
    /(^|[_.-])(sig|pass|pwd|passphrase)$/.test(n) ||
    /(^|[_.-])(api|access|private|secret)[_-]?key$/.test(n) ||
    n === 'apikey'
  );
}

// scheme://userinfo@ : userinfo has no '/', '?', '#', '@' or whitespace.
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"'<>\\]+@/gi;
// name=value in query strings, kernel command lines and free text; a value
// ends where a query parameter, a word or a JSON string does.
const KEY_VALUE = /(?<![\w.-])([\w.-]+)=([^\s&"'#<>\\]*)/g;
// "name": "value" in JSON (pino lines, commands.json).
const JSON_PAIR = /"([\w.-]{1,100})"(\s*:\s*)"((?:[^"\\]|\\.)*)"/g;
// An HTTP header line in free text: "Authorization: Basic ...", "X-Auth-Token: ...".
const HEADER_LINE = /(?<![\w-])(authorization|proxy-authorization|x-auth-token|x-amz-security-token|cookie)(:[ \t]*)[^\r\n"]+/gi;

// Values that only say whether a secret is there ({token: 'held'}), or are
// already masked (Ironic's "******"), stay readable.
const NOT_A_SECRET = /^(|none|held|given|absent|present|true|false|null|\*+)$/i;
const secret = (name: string, value: string) => isSecretName(name) && !NOT_A_SECRET.test(value);

/** Redacts every secret this module knows of in free text (log lines, files, messages). */
export function redactText(text: string): string {
  return text
    .replace(USERINFO, `$1${MASK}@`)
    .replace(JSON_PAIR, (all, name: string, sep: string, value: string) => (secret(name, value) ? `"${name}"${sep}"${MASK}"` : all))
    .replace(KEY_VALUE, (all, name: string, value: string) => (secret(name, value) ? `${name}=${MASK}` : all))
    .replace(HEADER_LINE, `$1$2${MASK}`);
}

/** A URL fit for a message: no userinfo, no signature or token in its query. */
export function redactUrl(url: string | URL): string {
  return redactText(String(url));
}
