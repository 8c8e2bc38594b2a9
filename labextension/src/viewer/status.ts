/** The desktop's status as the server reports it (GET status_url), and how the toolbar shows it. */

/** 'refused': this user may no longer see the desktop (a share was revoked). */
export type DesktopState = 'starting' | 'running' | 'stopped' | 'failed' | 'refused';

const STATES: readonly DesktopState[] = ['starting', 'running', 'stopped', 'failed', 'refused'];

/** 'owner' and 'admin' may do everything; 'control' may type in a shared desktop; 'view' only watches. */
export type Role = 'owner' | 'admin' | 'control' | 'view';
const ROLES: readonly Role[] = ['owner', 'admin', 'control', 'view'];

export interface Watcher {
  user: string;
  role: Role;
}

export interface DesktopStatus {
  state: DesktopState;
  message: string;
  width: number;
  height: number;
  /** "tigervnc", "turbovnc", or whatever a newer server reports; "" when unknown. */
  vncServer: string;
  gpus: string[];
  /** "gpu", "software", or "" when unknown. */
  gl: string;
  glRenderer: string;
  /** The server's explanation when OpenGL runs in software; "" otherwise. */
  glNotice: string;
  jobId: string | null;
  /** Seconds until the Slurm job ends, when it has a time limit. */
  secondsLeft: number | null;
  /** What the viewing user may do here, and whose desktop it is. */
  role: Role;
  owner: string;
  /** Who else is connected (told to the owner and admins only). */
  watchers: Watcher[];
  /** No input for long enough: viewers pause (and stop polling) until the user resumes. */
  paused: boolean;
  /** Seconds until the idle shutdown ends the desktop; null when there is none. */
  shutdownIn: number | null;
  /** Minutes without input after which the idle shutdown ends the desktop; null when there is none. */
  shutdownMinutes: number | null;
  /** For the owner: the ssh and vncviewer commands that bring the desktop to their own VNC viewer. */
  nativeClient: { ssh: string; viewer: string } | null;
}

function nativeClient(value: unknown): { ssh: string; viewer: string } | null {
  const obj = value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {};
  return typeof obj.ssh === 'string' && obj.ssh && typeof obj.viewer === 'string' && obj.viewer
    ? { ssh: obj.ssh, viewer: obj.viewer }
    : null;
}

function role(value: unknown): Role {
  return typeof value === 'string' && ROLES.includes(value as Role) ? (value as Role) : 'view';
}

function watchers(value: unknown): Watcher[] {
  if (!Array.isArray(value)) {
    return [];
  }
  return value
    .filter((w): w is Record<string, unknown> => w !== null && typeof w === 'object' && typeof w.user === 'string')
    .map((w) => ({ user: w.user as string, role: role(w.role) }));
}

function seconds(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? Math.max(0, Math.floor(value)) : null;
}

function int(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? Math.max(0, Math.round(value)) : 0;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** Validates the status JSON; null when it is not a status at all (no known `state`). */
export function parseStatus(raw: unknown): DesktopStatus | null {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return null;
  }
  const obj = raw as Record<string, unknown>;
  const state = obj.state;
  if (typeof state !== 'string' || !STATES.includes(state as DesktopState)) {
    return null;
  }
  const jobId = obj.job_id;
  const left = obj.seconds_left;
  const you = obj.you !== null && typeof obj.you === 'object' ? (obj.you as Record<string, unknown>) : {};
  const idle = obj.idle !== null && typeof obj.idle === 'object' ? (obj.idle as Record<string, unknown>) : {};
  return {
    state: state as DesktopState,
    message: text(obj.message),
    width: int(obj.width),
    height: int(obj.height),
    vncServer: text(obj.vnc_server).toLowerCase(),
    gpus: Array.isArray(obj.gpus) ? obj.gpus.filter((g): g is string => typeof g === 'string' && g !== '') : [],
    gl: text(obj.gl).toLowerCase(),
    glRenderer: text(obj.gl_renderer),
    glNotice: text(obj.gl_notice),
    jobId: typeof jobId === 'string' && jobId !== '' ? jobId : typeof jobId === 'number' ? String(jobId) : null,
    secondsLeft: seconds(left),
    // A server without sharing says nothing about roles: its one user owns it.
    role: obj.you === undefined ? 'owner' : role(you.role),
    owner: text(obj.owner),
    watchers: watchers(obj.watchers),
    paused: idle.paused === true,
    shutdownIn: seconds(idle.shutdown_in),
    shutdownMinutes: seconds(idle.shutdown_minutes),
    nativeClient: nativeClient(obj.native_client),
  };
}

const SERVER_NAMES: Record<string, string> = { tigervnc: 'TigerVNC', turbovnc: 'TurboVNC' };

export function serverLabel(vncServer: string): string {
  return SERVER_NAMES[vncServer] ?? vncServer;
}

const pad2 = (n: number): string => String(n).padStart(2, '0');

/**
 * "45 s left", "9 min 05 s left", "42 min left", "2 h 05 min left", "3 d 4 h left"; "time is up" at 0.
 * Seconds are shown only in the last ten minutes, where they matter.
 */
export function formatTimeLeft(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s === 0) {
    return 'time is up';
  }
  if (s < 60) {
    return `${s} s left`;
  }
  if (s < 600) {
    return `${Math.floor(s / 60)} min ${pad2(s % 60)} s left`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min left`;
  }
  if (s < 86_400) {
    return `${Math.floor(s / 3600)} h ${pad2(Math.floor((s % 3600) / 60))} min left`;
  }
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h left`;
}

export type Urgency = 'ok' | 'warn' | 'critical';

/** How loudly to show the time left: amber under 15 minutes, red under 5. */
export function timeLeftUrgency(seconds: number): Urgency {
  if (seconds < 300) {
    return 'critical';
  }
  return seconds < 900 ? 'warn' : 'ok';
}

/** `secondsLeft` as reported at `fetchedAt`, counted down to `now` (both in ms). */
export function secondsLeftAt(secondsLeft: number, fetchedAt: number, now: number): number {
  return Math.max(0, secondsLeft - Math.floor(Math.max(0, now - fetchedAt) / 1000));
}

export interface StatusSummary {
  /** Short facts for the toolbar, e.g. ["TigerVNC", "1920×1080", "GPU: NVIDIA A100"]. */
  parts: string[];
  /** Shown when OpenGL runs in software: a notice, not an error. */
  softwareGl: boolean;
  /** Longer text for a tooltip. */
  detail: string;
}

/**
 * The GPU an OpenGL renderer string names, as a person says it: "NVIDIA H200/PCIe/SSE2" → "NVIDIA H200".
 * Only what the desktop's probe read from a real GL context ever reaches this; nothing is guessed.
 */
export function rendererName(renderer: string): string {
  return renderer.split('/')[0].trim();
}

/** "GPU OpenGL: NVIDIA H200" when the probe saw a GPU renderer; null otherwise. */
export function gpuGlLabel(status: Pick<DesktopStatus, 'gl' | 'glRenderer'>): string | null {
  return status.gl === 'gpu' && status.glRenderer ? `GPU OpenGL: ${rendererName(status.glRenderer)}` : null;
}

export function summarizeStatus(status: DesktopStatus): StatusSummary {
  const parts: string[] = [];
  const detail: string[] = [];
  if (status.vncServer) {
    parts.push(serverLabel(status.vncServer));
  }
  if (status.width > 0 && status.height > 0) {
    parts.push(`${status.width}×${status.height}`);
  }
  const softwareGl = status.gl === 'software';
  const gpuGl = gpuGlLabel(status);
  if (gpuGl) {
    parts.push(gpuGl);
  } else if (status.gpus.length > 0) {
    // GPUs for CUDA; OpenGL either in software (the notice says so) or not probed yet.
    parts.push(`${status.gpus.length > 1 ? 'GPUs' : 'GPU'}: ${status.gpus.join(', ')}`);
  }
  if (softwareGl) {
    parts.push('software OpenGL');
    detail.push(status.glNotice || 'No GPU: OpenGL is rendered in software (slower 3D).');
  }
  if (status.glRenderer) {
    detail.push(`OpenGL renderer: ${status.glRenderer}`);
  }
  if (status.jobId) {
    detail.push(`Slurm job ${status.jobId}`);
  }
  if (status.message) {
    detail.push(status.message);
  }
  return { parts, softwareGl, detail: detail.join('\n') };
}

/** The toolbar's sharing line: "View only — shared by alice", "Watching: bob (view only)"; "" for none. */
export function shareLabel(status: Pick<DesktopStatus, 'role' | 'owner' | 'watchers'>): string {
  const owner = status.owner || 'its owner';
  switch (status.role) {
    case 'view':
      return `View only — shared by ${owner}`;
    case 'control':
      return `Shared by ${owner} — you have control`;
    default: {
      if (status.watchers.length === 0) {
        return status.role === 'admin' ? `${owner}'s desktop (admin)` : '';
      }
      const who = status.watchers.map((w) => `${w.user} (${w.role === 'view' ? 'view only' : 'control'})`);
      return `Watching: ${who.join(', ')}`;
    }
  }
}

/** The paused viewer's line: why, and how long until an idle shutdown ends the desktop. */
export function pausedLabel(status: Pick<DesktopStatus, 'shutdownIn'>, secondsSince: number): string {
  const line = 'Paused: no keyboard or mouse input for a while.';
  if (status.shutdownIn === null) {
    return `${line} Resume to go on.`;
  }
  const left = Math.max(0, status.shutdownIn - secondsSince);
  if (left === 0) {
    return `${line} The desktop is ending.`;
  }
  return `${line} The desktop ends in ${formatTimeLeft(left).replace(/ left$/, '')} unless you keep it.`;
}
