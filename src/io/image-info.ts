import { checksumFromImageInfo } from './checksum.ts';
import { ImageFormatError } from './errors.ts';
import { DEFAULT_PERMITTED_FORMATS, type WriteImageRequest } from './write-image.ts';

// Ironic's write_image arguments → a WriteImageRequest. image_info comes from
// the conductor (drivers/modules/agent.py write_image); the inspection policy
// from lookup's `config` ([conductor]permitted_image_formats and
// disable_deep_image_inspection); download knobs from the agent's options.

export interface DownloadOptions {
  imageDownloadRetries: number;
  imageDownloadRetryIntervalSec: number;
  imageDownloadTimeoutSec: number;
  /** ipa-insecure: do not verify image servers' TLS certificates. */
  insecure?: boolean;
  /** ipa-cafile's contents (PEM): the CAs image servers are verified with, as IPA does. */
  ca?: string;
  /** ipa-image-file-dirs: the directories file:// image and checksum URLs may point into (none: file:// refused). */
  imageFileDirs?: readonly string[];
}

/** image_request_authorization: Ironic sends the header value base64-encoded (agent.py write_image). */
function requestAuthorization(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const decoded = typeof value === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(value) ? Buffer.from(value, 'base64').toString('utf8') : '';
  // A header value must be printable and on one line; anything else is a broken image_info, not a header.
  if (!decoded || !/^[\x20-\x7e]+$/.test(decoded)) {
    throw new ImageFormatError("image_info 'image_request_authorization' is not a base64-encoded header value");
  }
  return decoded;
}

export function requestFromImageInfo(
  imageInfo: Record<string, unknown>,
  lookupConfig: Record<string, unknown>,
  target: { device: string; deviceSize: number },
  options: DownloadOptions,
): WriteImageRequest {
  const urls = imageInfo.urls;
  if (!Array.isArray(urls) || urls.length === 0 || !urls.every((u) => typeof u === 'string')) {
    throw new ImageFormatError("image_info 'urls' must be a non-empty list of strings");
  }
  const permitted = lookupConfig.permitted_image_formats;
  const proxies = imageInfo.proxies as { http?: string; https?: string } | undefined;
  const user = imageInfo.image_server_user;
  const password = imageInfo.image_server_password;
  return {
    urls: urls as string[],
    checksum: checksumFromImageInfo(imageInfo),
    diskFormat: typeof imageInfo.disk_format === 'string' ? imageInfo.disk_format : undefined,
    device: target.device,
    deviceSize: target.deviceSize,
    permittedFormats: Array.isArray(permitted) ? permitted.map(String) : DEFAULT_PERMITTED_FORMATS,
    deepInspection: lookupConfig.disable_deep_image_inspection !== true,
    proxies: proxies && typeof proxies === 'object' ? proxies : undefined,
    noProxy: typeof imageInfo.no_proxy === 'string' ? imageInfo.no_proxy : undefined,
    // Ironic 29 sends credentials with image_server_auth_strategy=http_basic.
    basicAuth:
      imageInfo.image_server_auth_strategy === 'http_basic' && typeof user === 'string' && user
        ? { username: user, password: typeof password === 'string' ? password : '' }
        : undefined,
    authorization: requestAuthorization(imageInfo.image_request_authorization),
    retries: options.imageDownloadRetries,
    retryIntervalSec: options.imageDownloadRetryIntervalSec,
    timeoutSec: options.imageDownloadTimeoutSec,
    insecure: options.insecure,
    ca: options.ca,
    fileDirs: options.imageFileDirs,
  };
}
