/**
 * What the JupyterLab side shows about the desktop, as pure functions (no DOM, no JupyterLab imports):
 * the status JSON from GET <base_url>vnc/api/status, the status bar's text, and which walltime warnings
 * are due. Unit-tested in model.test.ts; index.ts only wires these to JupyterLab.
 */

import { formatTimeLeft, gpuGlLabel } from '../viewer/status';

export { formatTimeLeft };

export type DesktopState = 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

const STATES: readonly DesktopState[] = ['starting', 'running', 'stopping', 'stopped', 'failed'];

/** The part of the server's status the lab uses. */
export interface LabStatus {
  state: DesktopState;
  message: string;
  width: number;
  height: number;
  /** GPU names, e.g. ["NVIDIA A100-SXM4-40GB"]; empty without GPUs. */
  gpus: string[];
  /** "gpu" when OpenGL runs on a GPU, "software" for llvmpipe, "" when unknown. */
  gl: string;
  glRenderer: string;
  jobId: string | null;
  /** Seconds until the Slurm job ends; null outside Slurm or without a time limit. */
  secondsLeft: number | null;
}

const int = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? Math.max(0, Math.round(v)) : 0);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** Validates the status JSON; null when it is not a desktop status (no known `state`). */
export function parseLabStatus(raw: unknown): LabStatus | null {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return null;
  }
  const obj = raw as Record<string, unknown>;
  if (typeof obj.state !== 'string' || !STATES.includes(obj.state as DesktopState)) {
    return null;
  }
  const job = obj.job_id;
  const left = obj.seconds_left;
  return {
    state: obj.state as DesktopState,
    message: str(obj.message),
    width: int(obj.width),
    height: int(obj.height),
    gpus: Array.isArray(obj.gpus) ? obj.gpus.filter((g): g is string => typeof g === 'string' && g !== '') : [],
    gl: str(obj.gl).toLowerCase(),
    glRenderer: str(obj.gl_renderer),
    jobId: typeof job === 'string' && job !== '' ? job : typeof job === 'number' ? String(job) : null,
    secondsLeft: typeof left === 'number' && Number.isFinite(left) ? Math.max(0, Math.floor(left)) : null,
  };
}

const STATE_LABELS: Record<DesktopState, string> = {
  starting: 'starting…',
  running: 'running',
  stopping: 'stopping…',
  stopped: 'not started',
  failed: 'failed',
};

/** The desktop's state in words; null (no answer, or not a status) reads "unavailable". */
export function stateLabel(state: DesktopState | null): string {
  return state ? STATE_LABELS[state] : 'unavailable';
}

/**
 * How OpenGL runs, from the desktop's own probe: "GPU OpenGL: NVIDIA H200" (the renderer a real GL context
 * reported through VirtualGL), "software GL" (llvmpipe, even if the job holds GPUs OpenGL cannot use), or
 * "GL: not probed yet" before the desktop has run its probe. Never a guess from the GPUs in the job.
 */
export function glLabel(status: Pick<LabStatus, 'gl' | 'glRenderer'>): string {
  const gpu = gpuGlLabel(status);
  if (gpu) {
    return gpu;
  }
  return status.gl === 'software' ? 'software GL' : 'GL: not probed yet';
}

/** The status bar's text, e.g. "Desktop: running · NVIDIA A100 · 1920×1080 · 2 h 05 min left". */
export function statusText(status: LabStatus | null): string {
  if (!status) {
    return `Desktop: ${stateLabel(null)}`;
  }
  const parts = [`Desktop: ${stateLabel(status.state)}`, glLabel(status)];
  if (status.width > 0 && status.height > 0) {
    parts.push(`${status.width}×${status.height}`);
  }
  if (status.secondsLeft !== null) {
    parts.push(formatTimeLeft(status.secondsLeft));
  }
  return parts.join(' · ');
}

/** The status bar item's tooltip: the details that do not fit, and what a click does. */
export function statusTooltip(status: LabStatus | null, error = ''): string {
  const lines: string[] = [];
  if (!status) {
    lines.push(error ? `Desktop status unavailable: ${error}` : 'Desktop status unavailable');
  } else {
    if (status.message) {
      lines.push(status.message);
    }
    if (status.glRenderer) {
      lines.push(`OpenGL renderer: ${status.glRenderer}`);
    }
    if (status.jobId) {
      lines.push(
        status.secondsLeft === null
          ? `Slurm job ${status.jobId}, no time limit`
          : `Slurm job ${status.jobId}: ${formatTimeLeft(status.secondsLeft)}`,
      );
    }
  }
  lines.push('Click to open the desktop in a new browser tab');
  return lines.join('\n');
}

/** Warn when this many seconds are left in the Slurm job: 10 and 2 minutes before the end. */
export const WARN_AT: readonly number[] = [600, 120];

export interface DueWarning {
  /** The threshold the warning is for (the most urgent one crossed). */
  threshold: number;
  /** Every threshold to mark as warned: those crossed at once get one warning, not several. */
  crossed: number[];
}

/**
 * The walltime warning to show now, if any: each threshold warns once, when `secondsLeft` is at or
 * below it. Thresholds crossed together (a lab opened with 90 s left) give one warning, the most
 * urgent. Null when nothing is due, or when the job has no time limit.
 */
export function dueWarning(
  secondsLeft: number | null,
  warned: ReadonlySet<number>,
  thresholds: readonly number[] = WARN_AT,
): DueWarning | null {
  if (secondsLeft === null) {
    return null;
  }
  const crossed = thresholds.filter(t => secondsLeft <= t && !warned.has(t)).sort((a, b) => a - b);
  return crossed.length ? { threshold: crossed[0], crossed } : null;
}

/** The notification's text for `secondsLeft` left in job `jobId` (times never break across lines). */
export function warningMessage(secondsLeft: number, jobId: string | null): string {
  const job = jobId ? `Slurm job ${jobId}` : 'Slurm job';
  const time = formatTimeLeft(secondsLeft).replace(/ left$/, '').replace(/ /g, '\u00a0');
  const when = secondsLeft > 0 ? `ends in ${time}` : 'is ending now';
  return `Your ${job} ${when}: the desktop and JupyterLab stop then. Save your work.`;
}

/** Seconds above a threshold that re-arm its warning (more than the jitter of squeue's end time). */
const REARM_MARGIN = 60;

/** Tracks which warnings were shown, per Slurm job (a new job starts with none). */
export class WarningLedger {
  private jobId: string | null = null;
  private readonly warned = new Set<number>();

  constructor(private readonly thresholds: readonly number[] = WARN_AT) {}

  /** The message to show for this status now, or null; marks what it returns as shown. */
  check(status: Pick<LabStatus, 'jobId' | 'secondsLeft'>): { threshold: number; message: string } | null {
    if (status.jobId !== this.jobId) {
      this.jobId = status.jobId;
      this.warned.clear();
    }
    if (status.secondsLeft !== null) {
      // An admin who extends the time limit moves the end away: warn again when it comes near.
      for (const t of [...this.warned]) {
        if (status.secondsLeft > t + REARM_MARGIN) {
          this.warned.delete(t);
        }
      }
    }
    const due = dueWarning(status.secondsLeft, this.warned, this.thresholds);
    if (!due || status.secondsLeft === null) {
      return null;
    }
    due.crossed.forEach(t => this.warned.add(t));
    return { threshold: due.threshold, message: warningMessage(status.secondsLeft, status.jobId) };
  }
}

/**
 * JupyterLab's page config entry in which the server says whether it offers the desktop: "available" where
 * a desktop can run (jupyter_vnc/extension.py, PAGE_CONFIG_KEY). Absent where jupyter-vnc is turned off.
 */
export const PAGE_CONFIG_KEY = 'jupyterVncDesktop';
/** The viewer's script and style by their versioned URLs (a JSON list in the page config). */
export const ASSETS_KEY = 'jupyterVncViewerAssets';

/** The versioned viewer.js and viewer.css URLs out of the page config's value; [] when absent or odd. */
export function viewerAssets(value: unknown): string[] {
  let list: unknown = value;
  if (typeof value === 'string') {
    try {
      list = JSON.parse(value);
    } catch {
      return [];
    }
  }
  return Array.isArray(list) ? list.filter((u): u is string => typeof u === 'string' && u.startsWith('/') && !u.startsWith('//')) : [];
}

/**
 * Whether to show the desktop at all (launcher tile, commands, status bar, walltime warnings), from the
 * page config entry. Only where the server says "available": a server without an Xvnc answers
 * "unavailable", and one where jupyter-vnc is off says nothing (PageConfig then gives "").
 */
export function desktopOffered(pageConfigValue: unknown): boolean {
  return pageConfigValue === 'available';
}

/** `<base>vnc/` for a server base URL such as "http://host/user/carol/viz/" (with or without "/"). */
export function desktopUrl(baseUrl: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/vnc/`;
}

// ---- the admin's apps (launcher tiles; apps.ts fetches and starts them) ----

export interface LabApp {
  name: string;
  title: string;
  gpu: boolean;
  icon: boolean;
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/** The server's `{"apps": [...]}`; entries it cannot read are left out. */
export function parseApps(raw: unknown): LabApp[] {
  const list = raw !== null && typeof raw === 'object' ? (raw as Record<string, unknown>).apps : null;
  const apps: LabApp[] = [];
  for (const item of Array.isArray(list) ? list : []) {
    if (item === null || typeof item !== 'object') {
      continue;
    }
    const app = item as Record<string, unknown>;
    if (typeof app.name === 'string' && NAME.test(app.name) && typeof app.title === 'string' && app.title) {
      apps.push({ name: app.name, title: app.title, gpu: app.gpu === true, icon: app.icon === true });
    }
  }
  return apps;
}

/** The tile's caption: what clicking it does. */
export function appCaption(app: LabApp): string {
  return `Open the GPU Desktop with ${app.title}${app.gpu ? ' (on the GPU)' : ''}`;
}

/** An SVG for a PNG icon (LabIcon draws SVG only). */
export function pngAsSvg(dataUrl: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="24" height="24" viewBox="0 0 24 24"><image href="${dataUrl}" width="24" height="24"/></svg>`;
}

/** The viewer's toolbar height (viewer.css --jvnc-bar-height). */
export const TOOLBAR_PX = 30;

/**
 * "WxH" for the desktop ahead of the tile's click: the screen area a viewer in a new tab of this window
 * gets; null where the viewer will not fit the desktop to its window (scaling, or a fixed size).
 */
export function aheadSize(
  innerWidth: number,
  innerHeight: number,
  viewer: { resize: string; toolbarCollapsed: boolean },
): string | null {
  if (viewer.resize !== 'remote') {
    return null;
  }
  const width = Math.floor(innerWidth);
  const height = Math.floor(innerHeight - (viewer.toolbarCollapsed ? 0 : TOOLBAR_PX));
  return width >= 320 && height >= 320 ? `${width}x${height}` : null;
}
