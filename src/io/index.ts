// The image pipeline's public surface.
export { writeImage, resolveChecksum, DEFAULT_PERMITTED_FORMATS } from './write-image.ts';
export type { WriteImageRequest, WriteImageResult } from './write-image.ts';
export { fetchToBuffer, openImageSource } from './source.ts';
export type { SourceOptions, ImageSource } from './source.ts';
export { checksumFromImageInfo, pickChecksumLine } from './checksum.ts';
export type { ExpectedChecksum, HashAlgo } from './checksum.ts';
export { inspectHead, decideFormat } from './format-detect.ts';
export type { ImageFormat, Inspection } from './format-detect.ts';
export type { Progress } from './block-sink.ts';
export {
  ImageError,
  ImageDownloadError,
  ImageChecksumError,
  ImageFormatError,
  ImageTooLargeError,
  ImageWriteError,
} from './errors.ts';
export { requestFromImageInfo } from './image-info.ts';
export type { DownloadOptions } from './image-info.ts';
