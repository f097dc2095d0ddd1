// Typed failures of the image pipeline. Each carries a message an operator can
// act on without reading logs: which URL, which device, what was expected.
// `diskTouched` says whether any byte reached the target device before the
// failure (the caller reports it; the pipeline already wiped the head).
// They are domain errors (src/base/errors.ts): src/commands/wire-errors.ts
// maps them to IPA's ImageDownloadError, ImageChecksumError, InvalidImage
// and ImageWriteError.

import { DomainError } from '../base/errors.ts';

export class ImageError extends DomainError {
  diskTouched = false;
}

/** Every URL failed (unreachable, HTTP error, retries exhausted, timeout). */
export class ImageDownloadError extends ImageError {}

/** The bytes served do not hash to the expected value. */
export class ImageChecksumError extends ImageError {
  constructor(
    readonly algo: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`image checksum mismatch (${algo}): expected ${expected}, got ${actual}`);
  }
}

/** The image's format is unsafe, not permitted, or not what was declared. */
export class ImageFormatError extends ImageError {}

/** The image (or its virtual size) does not fit on the target device. */
export class ImageTooLargeError extends ImageError {
  constructor(
    readonly imageBytes: number,
    readonly deviceBytes: number,
    detail: string,
  ) {
    super(`image too large for device: ${detail} (${imageBytes} bytes > device ${deviceBytes} bytes)`);
  }
}

/** Writing to the device (or converting onto it) failed. */
export class ImageWriteError extends ImageError {}
