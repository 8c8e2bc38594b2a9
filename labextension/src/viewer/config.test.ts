import { describe, expect, it, vi } from 'vitest';

import { DEFAULT_CONFIG, parseConfig, parseConfigText, websocketUrl } from './config';

describe('parseConfig', () => {
  it('maps the server keys', () => {
    const config = parseConfig({
      websocket_path: '/user/alice/vnc/websockify',
      status_url: '/user/alice/vnc/api/status',
      desktop_url: '/user/alice/vnc/api/desktop',
      lab_url: '/user/alice/lab',
      hub_url: '/hub/home',
      clipboard: false,
      title: 'alice: desktop',
    });
    expect(config).toEqual({
      websocketPath: '/user/alice/vnc/websockify',
      statusUrl: '/user/alice/vnc/api/status',
      desktopUrl: '/user/alice/vnc/api/desktop',
      labUrl: '/user/alice/lab',
      hubUrl: '/hub/home',
      clipboard: false,
      title: 'alice: desktop',
      xsrfToken: '',
    });
  });

  it('falls back to defaults for missing or mistyped values', () => {
    expect(parseConfig({})).toEqual(DEFAULT_CONFIG);
    expect(parseConfig(null)).toEqual(DEFAULT_CONFIG);
    expect(parseConfig([1, 2])).toEqual(DEFAULT_CONFIG);
    const config = parseConfig({ websocket_path: '', clipboard: 'false', title: 42, hub_url: null });
    expect(config.websocketPath).toBe('websockify');
    expect(config.clipboard).toBe(true);
    expect(config.title).toBe('Desktop');
    expect(config.hubUrl).toBe('');
  });

  it('keeps an empty hub_url empty (the link is hidden)', () => {
    expect(parseConfig({ hub_url: '' }).hubUrl).toBe('');
  });
});

describe('parseConfigText', () => {
  it('parses JSON and survives broken JSON', () => {
    expect(parseConfigText('{"clipboard": false}').clipboard).toBe(false);
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    expect(parseConfigText('{oops')).toEqual(DEFAULT_CONFIG);
    expect(warn).toHaveBeenCalledOnce();
    warn.mockRestore();
    expect(parseConfigText(null)).toEqual(DEFAULT_CONFIG);
    expect(parseConfigText('   ')).toEqual(DEFAULT_CONFIG);
  });
});

describe('websocketUrl', () => {
  it('uses ws: under http: and wss: under https:', () => {
    expect(websocketUrl('/user/alice/vnc/websockify', 'http://127.0.0.1:8000/user/alice/vnc/')).toBe(
      'ws://127.0.0.1:8000/user/alice/vnc/websockify',
    );
    expect(websocketUrl('/user/alice/vnc/websockify', 'https://hub.example.org/user/alice/vnc/#x')).toBe(
      'wss://hub.example.org/user/alice/vnc/websockify',
    );
  });

  it('resolves a relative path against the page and keeps a query string', () => {
    expect(websocketUrl('websockify?token=abc', 'https://h.example/user/bob/vnc/')).toBe(
      'wss://h.example/user/bob/vnc/websockify?token=abc',
    );
  });
});
