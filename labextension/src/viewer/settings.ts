/** The viewer's per-browser settings, kept in localStorage. */

/** How the remote screen meets the window: remote resize (the default), local scaling, or neither. */
export type ResizeMode = 'remote' | 'scale' | 'off';

export interface ViewerSettings {
  /** noVNC qualityLevel: JPEG quality 0 (low) .. 9 (high). */
  quality: number;
  /** noVNC compressionLevel: 0 (none) .. 9 (best, most server CPU). */
  compression: number;
  resize: ResizeMode;
  toolbarCollapsed: boolean;
}

/** noVNC's own defaults for quality and compression. */
export const DEFAULT_SETTINGS: Readonly<ViewerSettings> = Object.freeze({
  quality: 6,
  compression: 2,
  resize: 'remote',
  toolbarCollapsed: false,
});

const PREFIX = 'jupyter-vnc.';
const RESIZE_MODES: readonly ResizeMode[] = ['remote', 'scale', 'off'];

/** The part of the Storage interface used here, so tests can pass a Map-backed fake. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** An integer 0..9, or `fallback` when `value` is no number. Strings from storage or inputs are accepted. */
export function clampLevel(value: unknown, fallback: number): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n)) {
    return fallback;
  }
  return Math.min(9, Math.max(0, Math.round(n)));
}

function safeGet(storage: StorageLike | null, key: string): string | null {
  try {
    return storage ? storage.getItem(PREFIX + key) : null;
  } catch {
    return null; // storage disabled (privacy settings, sandboxed frame)
  }
}

export function loadSettings(storage: StorageLike | null): ViewerSettings {
  const d = DEFAULT_SETTINGS;
  const resize = safeGet(storage, 'resize');
  return {
    quality: clampLevel(safeGet(storage, 'quality'), d.quality),
    compression: clampLevel(safeGet(storage, 'compression'), d.compression),
    resize: RESIZE_MODES.includes(resize as ResizeMode) ? (resize as ResizeMode) : d.resize,
    toolbarCollapsed: safeGet(storage, 'toolbarCollapsed') === 'true',
  };
}

export function saveSettings(storage: StorageLike | null, settings: ViewerSettings): void {
  if (!storage) {
    return;
  }
  try {
    storage.setItem(PREFIX + 'quality', String(settings.quality));
    storage.setItem(PREFIX + 'compression', String(settings.compression));
    storage.setItem(PREFIX + 'resize', settings.resize);
    storage.setItem(PREFIX + 'toolbarCollapsed', String(settings.toolbarCollapsed));
  } catch {
    // Full or disabled storage: the settings still apply to this page.
  }
}

/** The RFB properties that a settings value stands for. */
export function rfbOptions(
  settings: ViewerSettings,
  ownScreen = true,
): {
  qualityLevel: number;
  compressionLevel: number;
  resizeSession: boolean;
  scaleViewport: boolean;
} {
  // Someone else's (shared) desktop keeps its owner's screen size: "fit to window" scales instead.
  const resize = !ownScreen && settings.resize === 'remote' ? 'scale' : settings.resize;
  return {
    qualityLevel: settings.quality,
    compressionLevel: settings.compression,
    resizeSession: resize === 'remote',
    scaleViewport: resize === 'scale',
  };
}
