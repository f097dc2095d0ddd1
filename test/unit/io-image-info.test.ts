import { describe, expect, it } from 'vitest';
import { requestFromImageInfo } from '../../src/io/image-info.ts';

const opts = { imageDownloadRetries: 9, imageDownloadRetryIntervalSec: 10, imageDownloadTimeoutSec: 60 };
const target = { device: '/dev/sdz', deviceSize: 1 << 30 };

describe('requestFromImageInfo', () => {
  it("maps Ironic 21.4's image_info and lookup config", () => {
    const req = requestFromImageInfo(
      {
        id: 'abc', urls: ['http://h/img.qcow2'], disk_format: 'qcow2', container_format: 'bare',
        checksum: 'd41d8cd98f00b204e9800998ecf8427e', os_hash_algo: 'sha512', os_hash_value: 'ff',
        proxies: { http: 'http://p:3128' }, no_proxy: '.local', stream_raw_images: true,
      },
      { permitted_image_formats: ['raw', 'qcow2'], disable_deep_image_inspection: false },
      target,
      opts,
    );
    expect(req).toMatchObject({
      urls: ['http://h/img.qcow2'], diskFormat: 'qcow2', checksum: { algo: 'sha512', value: 'ff' },
      permittedFormats: ['raw', 'qcow2'], deepInspection: true, proxies: { http: 'http://p:3128' }, noProxy: '.local',
      retries: 9, retryIntervalSec: 10, timeoutSec: 60, device: '/dev/sdz',
    });
  });

  it('defaults the policy when lookup sent none, and honours disabled inspection', () => {
    const req = requestFromImageInfo({ urls: ['http://h/i'] }, {}, target, opts);
    expect(req.permittedFormats).toEqual(['raw', 'qcow2', 'iso']);
    expect(req.deepInspection).toBe(true);
    expect(req.checksum).toBeUndefined();
    expect(requestFromImageInfo({ urls: ['http://h/i'] }, { disable_deep_image_inspection: true }, target, opts).deepInspection).toBe(false);
  });

  it('refuses image_info without urls', () => {
    expect(() => requestFromImageInfo({ urls: [] }, {}, target, opts)).toThrow(/urls/);
  });

  it("maps Ironic 29.0's image server credentials and request authorization; ipa-cafile/insecure pass through", () => {
    const req = requestFromImageInfo(
      {
        urls: ['https://h/i'],
        image_server_auth_strategy: 'http_basic', image_server_user: 'u', image_server_password: 'p',
        image_request_authorization: Buffer.from('Bearer t0k').toString('base64'),
      },
      {},
      target,
      { ...opts, insecure: false, ca: 'PEM' },
    );
    expect(req).toMatchObject({ basicAuth: { username: 'u', password: 'p' }, authorization: 'Bearer t0k', insecure: false, ca: 'PEM' });
    expect(requestFromImageInfo({ urls: ['http://h/i'], image_request_authorization: null }, {}, target, opts).authorization).toBeUndefined();
  });

  it('refuses an image_request_authorization that is not a base64-encoded one-line header value', () => {
    for (const bad of ['not base64!', Buffer.from('Bearer a\r\nX-Evil: 1').toString('base64'), 42]) {
      expect(() => requestFromImageInfo({ urls: ['http://h/i'], image_request_authorization: bad }, {}, target, opts)).toThrow(/image_request_authorization/);
    }
  });
});
