import { describe, expect, it, vi } from 'vitest';

import { DEFAULT_CONFIG, parseConfig, parseConfigText, websocketUrl } from './config';

describe('parseConfig', () => {
  it('maps the server keys', () => {
    const config = parseConfig({
      websocket_path: '/user/alice/vnc/websockify',
      status_url: '/user/alice/vnc/api/status',
      desktop_url: '/user/alice/vnc/api/desktop',
      activity_url: '/user/alice/vnc/api/activity',
      lab_url: '/user/alice/lab',
      hub_url: '/hub/home',
      shares_url: '/user/alice/vnc/api/shares',
      viewer_url: '/user/alice/vnc/',
      clipboard: false,
      title: 'alice: desktop',
      token: 'abc123',
      initial_status: { state: 'running', message: 'running', idle: { paused: true } },
    });
    expect(config.initialStatus).toMatchObject({ state: 'running', paused: true });
    expect({ ...config, initialStatus: null }).toEqual({
      websocketPath: '/user/alice/vnc/websockify',
      statusUrl: '/user/alice/vnc/api/status',
      desktopUrl: '/user/alice/vnc/api/desktop',
      activityUrl: '/user/alice/vnc/api/activity',
      labUrl: '/user/alice/lab',
      hubUrl: '/hub/home',
      sharesUrl: '/user/alice/vnc/api/shares',
      viewerUrl: '/user/alice/vnc/',
      clipboard: false,
      title: 'alice: desktop',
      xsrfToken: '',
      token: 'abc123',
      initialStatus: null,
    });
  });

  it('falls back to defaults for missing or mistyped values', () => {
    expect(parseConfig({})).toEqual(DEFAULT_CONFIG);
    expect(parseConfig(null)).toEqual(DEFAULT_CONFIG);
    expect(parseConfig([1, 2])).toEqual(DEFAULT_CONFIG);
    const config = parseConfig({ websocket_path: '', clipboard: 'false', title: 42, hub_url: null, token: 7 });
    expect(config.websocketPath).toBe('websockify');
    expect(config.clipboard).toBe(true);
    expect(config.title).toBe('Desktop');
    expect(config.hubUrl).toBe('');
    expect(config.token).toBe('');
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

  it('adds a token as the query parameter token, encoded, and only a non-empty one', () => {
    const page = 'https://h.example/user/alice/lab/tree/x.ipynb';
    expect(websocketUrl('/user/alice/vnc/websockify', page, 'abc123')).toBe(
      'wss://h.example/user/alice/vnc/websockify?token=abc123',
    );
    expect(websocketUrl('/user/alice/vnc/websockify', page, '')).toBe('wss://h.example/user/alice/vnc/websockify');
    expect(websocketUrl('/v/websockify?x=1#f', page, 'a b&c=d/é')).toBe(
      `wss://h.example/v/websockify?x=1&token=${encodeURIComponent('a b&c=d/é')}`,
    );
    expect(websocketUrl('/v/websockify?', page, 't')).toBe('wss://h.example/v/websockify?token=t');
  });
});
