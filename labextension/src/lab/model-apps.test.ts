import { describe, expect, it } from 'vitest';

import { aheadSize, appCaption, parseApps, pngAsSvg, viewerAssets } from './model';

describe('parseApps', () => {
  it('reads the apps it understands, never a command', () => {
    const apps = parseApps({
      apps: [
        { name: 'paraview', title: 'ParaView', gpu: true, icon: true, command: ['rm'] },
        { name: 'term', title: 'Terminal' },
        { name: 'Bad Name', title: 'x' },
        { name: 'notitle' },
        null,
      ],
    });
    expect(apps).toEqual([
      { name: 'paraview', title: 'ParaView', gpu: true, icon: true },
      { name: 'term', title: 'Terminal', gpu: false, icon: false },
    ]);
    expect(parseApps(null)).toEqual([]);
    expect(parseApps({ apps: 'x' })).toEqual([]);
  });
});

describe('appCaption', () => {
  it('says what the tile does', () => {
    expect(appCaption({ name: 'pv', title: 'ParaView', gpu: true, icon: false })).toBe(
      'Open the GPU Desktop with ParaView (on the GPU)',
    );
    expect(appCaption({ name: 't', title: 'Terminal', gpu: false, icon: false })).toBe('Open the GPU Desktop with Terminal');
  });
});

describe('pngAsSvg', () => {
  it('wraps a PNG data URL in an SVG image', () => {
    expect(pngAsSvg('data:image/png;base64,AAAA')).toContain('<image href="data:image/png;base64,AAAA"');
  });
});

describe('viewerAssets', () => {
  it('reads the versioned URLs from the page config, JSON or already parsed', () => {
    const urls = ['/user/a/vnc/static/viewer.js?v=1', '/user/a/vnc/static/viewer.css?v=2'];
    expect(viewerAssets(JSON.stringify(urls))).toEqual(urls);
    expect(viewerAssets(urls)).toEqual(urls);
    expect(viewerAssets(undefined)).toEqual([]);
    expect(viewerAssets('not json')).toEqual([]);
    expect(viewerAssets(['https://evil.example/x.js', '//evil.example/x.js', 7])).toEqual([]); // this server's paths only
  });
});

describe('aheadSize', () => {
  it("is the new tab's screen area where the viewer fits the desktop to it", () => {
    expect(aheadSize(1700, 1100, { resize: 'remote', toolbarCollapsed: false })).toBe('1700x1070');
    expect(aheadSize(1700, 1100, { resize: 'remote', toolbarCollapsed: true })).toBe('1700x1100');
    expect(aheadSize(1700.6, 1100.4, { resize: 'remote', toolbarCollapsed: true })).toBe('1700x1100');
    expect(aheadSize(1700, 1100, { resize: 'scale', toolbarCollapsed: false })).toBeNull();
    expect(aheadSize(1700, 1100, { resize: 'off', toolbarCollapsed: false })).toBeNull();
    expect(aheadSize(300, 1100, { resize: 'remote', toolbarCollapsed: false })).toBeNull();
  });
});
