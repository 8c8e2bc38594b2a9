/** The viewer's per-browser settings, kept in localStorage. */

/** How the remote screen meets the window: remote resize (the default), local scaling, or neither. */
export type ResizeMode = 'remote' | 'scale' | 'off';
/** Which way text copied on one side reaches the other (where the site allows a clipboard at all). */
export type ClipboardDirection = 'both' | 'to-desktop' | 'from-desktop' | 'off';

export interface ViewerSettings {
  /** noVNC qualityLevel: JPEG quality 0 (low) .. 9 (high). */
  quality: number;
  /** noVNC compressionLevel: 0 (none) .. 9 (best, most server CPU). */
  compression: number;
  resize: ResizeMode;
  clipboard: ClipboardDirection;
  toolbarCollapsed: boolean;
}

/** noVNC's own defaults for quality and compression. */
export const DEFAULT_SETTINGS: Readonly<ViewerSettings> = Object.freeze({
  quality: 6,
  compression: 2,
  resize: 'remote',
  clipboard: 'both',
  toolbarCollapsed: false,
});

const PREFIX = 'jupyter-vnc.';
const RESIZE_MODES: readonly ResizeMode[] = ['remote', 'scale', 'off'];
const DIRECTIONS: readonly ClipboardDirection[] = ['both', 'to-desktop', 'from-desktop', 'off'];

/** The user's own defaults (JupyterLab's settings for jupyter-vnc), each checked; unknown values dropped. */
export function parseDefaults(raw: unknown): Partial<ViewerSettings> {
  const obj = raw !== null && typeof raw === 'object' ? (raw as Record<string, unknown>) : {};
  const out: Partial<ViewerSettings> = {};
  if (typeof obj.quality === 'number') {
    out.quality = clampLevel(obj.quality, DEFAULT_SETTINGS.quality);
  }
  if (typeof obj.compression === 'number') {
    out.compression = clampLevel(obj.compression, DEFAULT_SETTINGS.compression);
  }
  if (RESIZE_MODES.includes(obj.resize as ResizeMode)) {
    out.resize = obj.resize as ResizeMode;
  }
  if (DIRECTIONS.includes(obj.clipboard as ClipboardDirection)) {
    out.clipboard = obj.clipboard as ClipboardDirection;
  }
  return out;
}

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

/**
 * The settings in force: what the user changed in this browser's viewer, else their own defaults
 * (JupyterLab's settings, in the JupyterLab tab), else noVNC's.
 */
export function loadSettings(storage: StorageLike | null, defaults: Partial<ViewerSettings> = {}): ViewerSettings {
  const d = { ...DEFAULT_SETTINGS, ...defaults };
  const resize = safeGet(storage, 'resize');
  const clipboard = safeGet(storage, 'clipboard');
  return {
    quality: clampLevel(safeGet(storage, 'quality'), d.quality),
    compression: clampLevel(safeGet(storage, 'compression'), d.compression),
    resize: RESIZE_MODES.includes(resize as ResizeMode) ? (resize as ResizeMode) : d.resize,
    clipboard: DIRECTIONS.includes(clipboard as ClipboardDirection) ? (clipboard as ClipboardDirection) : d.clipboard,
    toolbarCollapsed: safeGet(storage, 'toolbarCollapsed') === 'true',
  };
}

/** Keeps what the user just changed (only that: the rest keeps following their defaults). */
export function saveSettings(storage: StorageLike | null, change: Partial<ViewerSettings>): void {
  if (!storage) {
    return;
  }
  try {
    for (const [key, value] of Object.entries(change)) {
      storage.setItem(PREFIX + key, String(value));
    }
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
