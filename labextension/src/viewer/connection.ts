/**
 * The connection's life: connect, notice the loss, wait (exponential backoff), check the desktop, connect
 * again. No DOM here: the RFB object comes from a factory, so tests drive this with fakes and fake timers.
 */

import { Backoff } from './backoff';
import type { DesktopStatus } from './status';

export type VncState = 'connecting' | 'connected' | 'disconnected';

/**
 * Why no reconnect is scheduled: the user pressed Disconnect, the desktop itself is gone, or it was idle
 * (paused: nothing is polled until the user resumes, so the hub sees the desktop idle).
 */
export type Halt = 'user' | 'desktop' | 'idle' | null;

export interface ConnectionView {
  state: VncState;
  /** Human-readable cause of the state ("connection lost", "the desktop is starting"); may be "". */
  reason: string;
  /** When the next attempt starts (ms since epoch), while one is scheduled after a failure. */
  retryAt: number | null;
  halted: Halt;
}

/** The part of noVNC's RFB that the controller uses. */
export interface RfbLike {
  addEventListener(type: string, listener: (event: Event) => void): void;
  disconnect(): void;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface ConnectionDeps {
  /** Opens a new RFB connection (noVNC connects in its constructor). May throw. */
  createRfb(): RfbLike;
  /** Called with each new RFB object, before it can have connected. */
  onRfb?(rfb: RfbLike): void;
  onView(view: ConnectionView): void;
  /** The desktop's status, or null when unknown; absent when the server gives no status URL. */
  fetchStatus?(): Promise<DesktopStatus | null>;
  /** The status the page came with: the first attempt goes by it instead of asking (fetchStatus). */
  initialStatus?: DesktopStatus | null;
  /** Starts a stopped desktop, when the page opens or the user presses Connect. */
  startDesktop?(): Promise<void>;
  /** Tells the server the user is back (Resume, Keep it): a paused desktop counts as used again. */
  resume?(): Promise<void>;
  backoff?: Backoff;
  clock?: Clock;
  /** How often to look again while the desktop is starting. */
  startingPollMs?: number;
  /** Give up on a connection that has not finished its RFB handshake after this long. */
  connectTimeoutMs?: number;
}

export class ConnectionController {
  private readonly backoff: Backoff;
  private readonly clock: Clock;
  private readonly startingPollMs: number;
  private readonly connectTimeoutMs: number;
  private rfb: RfbLike | null = null;
  private timer: unknown = null;
  /** Bumped by every new attempt or user action: async results of an older one are dropped. */
  private generation = 0;
  private view: ConnectionView = { state: 'disconnected', reason: '', retryAt: null, halted: null };
  private initialStatus: DesktopStatus | null;

  constructor(private readonly deps: ConnectionDeps) {
    this.initialStatus = deps.initialStatus ?? null;
    this.backoff = deps.backoff ?? new Backoff();
    this.clock = deps.clock ?? realClock;
    this.startingPollMs = deps.startingPollMs ?? 1000;
    this.connectTimeoutMs = deps.connectTimeoutMs ?? 30_000;
  }

  get current(): ConnectionView {
    return this.view;
  }

  /** First connect after the page loads: a stopped desktop is started. */
  start(): void {
    void this.attempt(true);
  }

  /** The user's Connect: try now, with a fresh backoff; a stopped desktop is started. */
  connect(): void {
    this.backoff.reset();
    void this.attempt(true);
  }

  /** The user's Disconnect: close, and stay closed until connect(). */
  disconnect(): void {
    this.generation += 1;
    this.cancelTimer();
    this.dropRfb();
    this.setView({ state: 'disconnected', reason: 'disconnected by you', retryAt: null, halted: 'user' });
  }

  /** The desktop was (re)started on the server: drop the old connection and reach the new desktop. */
  desktopRestarted(): void {
    this.dropRfb();
    this.backoff.reset();
    void this.attempt(false);
  }

  private setView(view: ConnectionView): void {
    this.view = view;
    this.deps.onView(view);
  }

  private cancelTimer(): void {
    if (this.timer !== null) {
      this.clock.clearTimeout(this.timer);
      this.timer = null;
    }
  }

  /** Forget the current RFB first, so that its disconnect event is not taken for a lost connection. */
  private dropRfb(): void {
    const rfb = this.rfb;
    this.rfb = null;
    if (rfb) {
      try {
        rfb.disconnect();
      } catch {
        // already closed
      }
    }
  }

  private schedule(gen: number, delayMs: number, view: Omit<ConnectionView, 'retryAt'>, showCountdown: boolean): void {
    this.cancelTimer();
    this.setView({ ...view, retryAt: showCountdown ? this.clock.now() + delayMs : null });
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      if (gen === this.generation) {
        void this.attempt(false);
      }
    }, delayMs);
  }

  /** After a failure: wait the next backoff delay, then try again. */
  private retryLater(gen: number, reason: string): void {
    this.schedule(gen, this.backoff.next(), { state: 'disconnected', reason, halted: null }, true);
  }

  /** `mayStart`: on the user's behalf (page opened, Connect pressed), so a stopped desktop is started. */
  private async attempt(mayStart: boolean): Promise<void> {
    const gen = ++this.generation;
    this.cancelTimer();
    this.setView({ state: 'connecting', reason: '', retryAt: null, halted: null });

    // The page's own status, once: a status request before the websocket would cost the first
    // connection a round trip (and the server an X query) for what the page already said.
    const known = this.initialStatus;
    this.initialStatus = null;
    if (known || this.deps.fetchStatus) {
      let status: DesktopStatus | null = known;
      try {
        status ??= (await this.deps.fetchStatus?.()) ?? null;
      } catch {
        status = null; // unknown: try the websocket anyway
      }
      if (gen !== this.generation) {
        return;
      }
      if (status && !(await this.desktopReady(gen, status, mayStart))) {
        return;
      }
      if (gen !== this.generation) {
        return;
      }
    }
    this.open(gen);
  }

  /** Whether to open the websocket now; otherwise the view and the next step are already set. */
  private async desktopReady(gen: number, status: DesktopStatus, mayStart: boolean): Promise<boolean> {
    const waitForStart = (reason: string): void =>
      this.schedule(gen, this.startingPollMs, { state: 'connecting', reason, halted: null }, false);

    if (status.paused && status.state === 'running') {
      if (!mayStart || !this.deps.resume) {
        this.setView({ state: 'disconnected', reason: 'paused: no keyboard or mouse input', retryAt: null, halted: 'idle' });
        return false;
      }
      try {
        await this.deps.resume();
      } catch (err) {
        if (gen === this.generation) {
          const why = err instanceof Error ? err.message : String(err);
          this.setView({ state: 'disconnected', reason: `could not resume: ${why}`, retryAt: null, halted: 'idle' });
        }
        return false;
      }
      return true;
    }
    switch (status.state) {
      case 'running':
        return true;
      case 'refused':
        this.setView({
          state: 'disconnected',
          reason: status.message || 'you may not see this desktop',
          retryAt: null,
          halted: 'desktop',
        });
        return false;
      case 'starting':
        waitForStart(status.message || 'the desktop is starting');
        return false;
      case 'stopped':
        // Automatic retries never start it: a desktop that stopped (logout, time limit) stays stopped
        // until the user asks again.
        if (mayStart && this.deps.startDesktop) {
          this.setView({ state: 'connecting', reason: 'starting the desktop', retryAt: null, halted: null });
          try {
            await this.deps.startDesktop();
          } catch (err) {
            if (gen === this.generation) {
              const why = err instanceof Error ? err.message : String(err);
              this.setView({
                state: 'disconnected',
                reason: `could not start the desktop: ${why}`,
                retryAt: null,
                halted: 'desktop',
              });
            }
            return false;
          }
          if (gen === this.generation) {
            waitForStart('starting the desktop');
          }
          return false;
        }
        this.setView({
          state: 'disconnected',
          reason: status.message || 'the desktop is stopped',
          retryAt: null,
          halted: 'desktop',
        });
        return false;
      case 'failed':
        this.setView({
          state: 'disconnected',
          reason: status.message || 'the desktop failed',
          retryAt: null,
          halted: 'desktop',
        });
        return false;
    }
  }

  private open(gen: number): void {
    let rfb: RfbLike;
    try {
      rfb = this.deps.createRfb();
    } catch (err) {
      this.retryLater(gen, `cannot connect: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    this.rfb = rfb;
    let connected = false;
    let failure = '';
    let fatal = false;

    // noVNC waits forever for a server that accepts the websocket but never speaks RFB.
    this.cancelTimer();
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      if (this.rfb === rfb && !connected) {
        this.dropRfb();
        this.retryLater(gen, 'the desktop did not answer');
      }
    }, this.connectTimeoutMs);

    rfb.addEventListener('connect', () => {
      if (this.rfb !== rfb) {
        return;
      }
      connected = true;
      this.cancelTimer();
      this.backoff.reset();
      this.setView({ state: 'connected', reason: '', retryAt: null, halted: null });
    });
    rfb.addEventListener('securityfailure', (event) => {
      const detail = (event as CustomEvent<{ status?: number; reason?: string }>).detail ?? {};
      failure = detail.reason || `the VNC server refused the connection (security result ${detail.status ?? '?'})`;
    });
    rfb.addEventListener('credentialsrequired', () => {
      // The desktop is meant to run with Jupyter's login as its only auth: a password prompt means a
      // misconfigured VNC server, and retrying would not change that.
      failure = 'the VNC server asks for credentials; it must run without a VNC password';
      fatal = true;
      rfb.disconnect();
    });
    rfb.addEventListener('disconnect', (event) => {
      if (this.rfb !== rfb) {
        return; // dropped on purpose
      }
      this.rfb = null;
      this.cancelTimer();
      if (fatal) {
        this.setView({ state: 'disconnected', reason: failure, retryAt: null, halted: 'desktop' });
        return;
      }
      const clean = Boolean((event as CustomEvent<{ clean?: boolean }>).detail?.clean);
      const reason = failure || (connected ? (clean ? 'the connection was closed' : 'the connection was lost') : 'could not connect');
      this.retryLater(gen, reason);
    });

    this.deps.onRfb?.(rfb);
  }
}

/** The status line's text for a view: "Connected", "Disconnected: could not connect. Reconnecting in 4 s". */
export function describeConnection(view: ConnectionView, now: number): string {
  const reason = view.reason ? view.reason.charAt(0).toUpperCase() + view.reason.slice(1) : '';
  switch (view.state) {
    case 'connected':
      return 'Connected';
    case 'connecting':
      return reason ? `${reason}…` : 'Connecting…';
    case 'disconnected': {
      let line = view.halted === 'user' || !reason ? 'Disconnected' : `Disconnected: ${view.reason}`;
      if (view.retryAt !== null) {
        const seconds = Math.max(0, Math.ceil((view.retryAt - now) / 1000));
        line += seconds > 0 ? ` · retry in ${seconds} s` : ' · retrying…';
      }
      return line;
    }
  }
}
