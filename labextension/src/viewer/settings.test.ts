import { describe, expect, it } from 'vitest';

import {
  clampLevel,
  DEFAULT_SETTINGS,
  loadSettings,
  parseDefaults,
  rfbOptions,
  saveSettings,
  type StorageLike,
} from './settings';

class MemoryStorage implements StorageLike {
  readonly items = new Map<string, string>();
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }
}

describe('clampLevel', () => {
  it('keeps 0..9 integers and falls back on garbage', () => {
    expect(clampLevel('7', 6)).toBe(7);
    expect(clampLevel(12, 6)).toBe(9);
    expect(clampLevel(-1, 6)).toBe(0);
    expect(clampLevel(4.6, 6)).toBe(5);
    expect(clampLevel('abc', 6)).toBe(6);
    expect(clampLevel('', 2)).toBe(2);
    expect(clampLevel(null, 2)).toBe(2);
  });
});

describe('loadSettings / saveSettings', () => {
  it('gives the defaults on an empty or missing storage', () => {
    expect(loadSettings(new MemoryStorage())).toEqual(DEFAULT_SETTINGS);
    expect(loadSettings(null)).toEqual(DEFAULT_SETTINGS);
  });

  it('round-trips', () => {
    const storage = new MemoryStorage();
    const settings = {
      quality: 9,
      compression: 0,
      resize: 'scale' as const,
      clipboard: 'to-desktop' as const,
      toolbarCollapsed: true,
    };
    saveSettings(storage, settings);
    expect(loadSettings(storage)).toEqual(settings);
    expect(storage.items.get('jupyter-vnc.quality')).toBe('9');
  });

  it('ignores broken stored values and a throwing storage', () => {
    const storage = new MemoryStorage();
    storage.setItem('jupyter-vnc.quality', '99');
    storage.setItem('jupyter-vnc.resize', 'zoom');
    expect(loadSettings(storage)).toMatchObject({ quality: 9, resize: 'remote' });
    const throwing: StorageLike = {
      getItem: () => {
        throw new Error('SecurityError');
      },
      setItem: () => {
        throw new Error('QuotaExceededError');
      },
    };
    expect(loadSettings(throwing)).toEqual(DEFAULT_SETTINGS);
    expect(() => saveSettings(throwing, DEFAULT_SETTINGS)).not.toThrow();
  });
});

describe("the user's defaults", () => {
  it('apply where this browser has no choice of its own, and a change here keeps only that one', () => {
    const storage = new MemoryStorage();
    const defaults = parseDefaults({ quality: 3, resize: 'scale', clipboard: 'off', compression: 'x', junk: 1 });
    expect(defaults).toEqual({ quality: 3, resize: 'scale', clipboard: 'off' });
    expect(loadSettings(storage, defaults)).toMatchObject({ quality: 3, compression: 2, resize: 'scale', clipboard: 'off' });
    saveSettings(storage, { compression: 7 });
    expect([...storage.items.keys()]).toEqual(['jupyter-vnc.compression']);
    expect(loadSettings(storage, { ...defaults, quality: 5 })).toMatchObject({ quality: 5, compression: 7 });
    expect(parseDefaults(null)).toEqual({});
    expect(parseDefaults({ quality: 42, clipboard: 'sideways' })).toEqual({ quality: 9 });
  });
});

describe('rfbOptions', () => {
  it('maps the resize mode onto noVNC properties', () => {
    expect(rfbOptions(DEFAULT_SETTINGS)).toEqual({
      qualityLevel: 6,
      compressionLevel: 2,
      resizeSession: true,
      scaleViewport: false,
    });
    expect(rfbOptions({ ...DEFAULT_SETTINGS, resize: 'scale' })).toMatchObject({
      resizeSession: false,
      scaleViewport: true,
    });
    expect(rfbOptions({ ...DEFAULT_SETTINGS, resize: 'off' })).toMatchObject({
      resizeSession: false,
      scaleViewport: false,
    });
  });

  it("never resizes someone else's screen: fit to window scales instead", () => {
    expect(rfbOptions(DEFAULT_SETTINGS, false)).toMatchObject({ resizeSession: false, scaleViewport: true });
    expect(rfbOptions({ ...DEFAULT_SETTINGS, resize: 'off' }, false)).toMatchObject({
      resizeSession: false,
      scaleViewport: false,
    });
  });
});
