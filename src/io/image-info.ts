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
    retries: options.imageDownloadRetries,
    retryIntervalSec: options.imageDownloadRetryIntervalSec,
    timeoutSec: options.imageDownloadTimeoutSec,
    insecure: options.insecure,
  };
}
