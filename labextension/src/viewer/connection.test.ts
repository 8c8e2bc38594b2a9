import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { Backoff, DEFAULT_BACKOFF } from './backoff';
import { ConnectionController, describeConnection, type ConnectionView, type RfbLike } from './connection';
import type { DesktopState, DesktopStatus } from './status';

/** Stands in for noVNC's RFB: the test decides when it connects or drops. */
class FakeRfb extends EventTarget implements RfbLike {
  disconnected = false;
  connectOk(): void {
    this.dispatchEvent(new CustomEvent('connect', { detail: {} }));
  }
  drop(clean = false): void {
    this.dispatchEvent(new CustomEvent('disconnect', { detail: { clean } }));
  }
  disconnect(): void {
    this.disconnected = true;
    queueMicrotask(() => this.drop(true)); // noVNC reports the disconnect later, too
  }
}

function status(state: DesktopState, message = '', extra: Partial<DesktopStatus> = {}): DesktopStatus {
  return {
    state,
    message,
    width: 0,
    height: 0,
    vncServer: '',
    gpus: [],
    gl: '',
    glRenderer: '',
    glNotice: '',
    jobId: null,
    secondsLeft: null,
    role: 'owner',
    owner: 'alice',
    watchers: [],
    paused: false,
    shutdownIn: null,
    shutdownMinutes: null,
    nativeClient: null,
    ...extra,
  };
}

function setup(
  options: {
    statuses?: DesktopState[];
    startDesktop?: () => Promise<void>;
    fetchStatus?: () => Promise<DesktopStatus | null>;
    resume?: () => Promise<void>;
    initialStatus?: DesktopStatus | null;
  } = {},
) {
  const rfbs: FakeRfb[] = [];
  const views: ConnectionView[] = [];
  const statuses = options.statuses ? [...options.statuses] : null;
  const controller = new ConnectionController({
    createRfb: () => {
      const rfb = new FakeRfb();
      rfbs.push(rfb);
      return rfb;
    },
    onView: (view) => views.push(view),
    fetchStatus:
      options.fetchStatus ??
      (statuses ? async () => status(statuses.length > 1 ? statuses.shift()! : statuses[0]) : undefined),
    startDesktop: options.startDesktop,
    resume: options.resume,
    initialStatus: options.initialStatus,
    backoff: new Backoff(DEFAULT_BACKOFF, () => 0), // no jitter: exact delays
  });
  const last = () => views[views.length - 1];
  return { controller, rfbs, views, last };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('ConnectionController', () => {
  it("opens the first connection on the page's own status, and asks the server only from then on", async () => {
    let asked = 0;
    const { controller, rfbs } = setup({
      initialStatus: status('running'),
      fetchStatus: async () => {
        asked += 1;
        return status('running');
      },
    });
    controller.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(rfbs).toHaveLength(1); // no request before the websocket
    expect(asked).toBe(0);
    rfbs[0].connectOk();
    rfbs[0].drop();
    await vi.advanceTimersByTimeAsync(1000);
    expect(asked).toBe(1); // the reconnect asks: the page's status is old by then
    expect(rfbs).toHaveLength(2);
  });

  it("goes by the page's status when it says the desktop is paused: no websocket until the user resumes", async () => {
    const { controller, rfbs, last } = setup({
      initialStatus: status('running', '', { paused: true }),
      fetchStatus: async () => status('running', '', { paused: true }),
    });
    controller.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(rfbs).toHaveLength(0);
    expect(last()).toMatchObject({ halted: 'idle' });
  });

  it('halts on a paused desktop without retrying, and resumes only when the user asks', async () => {
    let paused = true;
    let resumed = 0;
    const { controller, rfbs, last } = setup({
      fetchStatus: async () => status('running', '', { paused }),
      resume: async () => {
        resumed += 1;
        paused = false;
      },
    });
    controller.start(); // the page opening is the user's action: it resumes
    await vi.advanceTimersByTimeAsync(0);
    expect(resumed).toBe(1);
    expect(rfbs).toHaveLength(1);
    rfbs[0].connectOk();

    // The server paused the viewer: the automatic retry sees "paused" and stops there, for good.
    paused = true;
    rfbs[0].drop(true);
    await vi.advanceTimersByTimeAsync(500);
    expect(last()).toMatchObject({ state: 'disconnected', halted: 'idle', retryAt: null });
    await vi.advanceTimersByTimeAsync(600_000);
    expect(rfbs).toHaveLength(1);
    expect(resumed).toBe(1);

    controller.connect(); // Resume
    await vi.advanceTimersByTimeAsync(0);
    expect(resumed).toBe(2);
    expect(rfbs).toHaveLength(2);
  });

  it('stops for good when the server refuses this user (a revoked share)', async () => {
    const { controller, rfbs, last } = setup({
      fetchStatus: async () => status('refused', 'this desktop is no longer shared with you'),
    });
    controller.start();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(rfbs).toHaveLength(0);
    expect(last()).toMatchObject({ halted: 'desktop', reason: 'this desktop is no longer shared with you' });
  });

  it('connects, and after a loss retries after 0.5 s, 1 s, 2 s ...', async () => {
    const { controller, rfbs, last } = setup();
    controller.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(last().state).toBe('connecting');
    expect(rfbs).toHaveLength(1);
    rfbs[0].connectOk();
    expect(last()).toMatchObject({ state: 'connected', halted: null });

    rfbs[0].drop(false);
    expect(last()).toMatchObject({ state: 'disconnected', reason: 'the connection was lost' });
    expect(last().retryAt).toBe(Date.now() + 500);
    await vi.advanceTimersByTimeAsync(499);
    expect(rfbs).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(rfbs).toHaveLength(2);
    expect(last().state).toBe('connecting');

    rfbs[1].drop(false);
    expect(last()).toMatchObject({ state: 'disconnected', reason: 'could not connect' });
    expect(last().retryAt).toBe(Date.now() + 1000);
    await vi.advanceTimersByTimeAsync(1000);
    rfbs[2].drop(false);
    expect(last().retryAt).toBe(Date.now() + 2000);
  });

  it('resets the backoff after a successful connect', async () => {
    const { controller, rfbs, last } = setup();
    controller.start();
    await vi.advanceTimersByTimeAsync(0);
    for (const delay of [500, 1000, 2000]) {
      rfbs[rfbs.length - 1].drop(false);
      await vi.advanceTimersByTimeAsync(delay);
    }
    rfbs[rfbs.length - 1].connectOk();
    rfbs[rfbs.length - 1].drop(false);
    expect(last().retryAt).toBe(Date.now() + 500);
  });

  it('caps the delay at 10 s', async () => {
    const { controller, rfbs, last } = setup();
    controller.start();
    await vi.advanceTimersByTimeAsync(0);
    let delay = 0;
    for (let i = 0; i < 9; i++) {
      rfbs[rfbs.length - 1].drop(false);
      delay = last().retryAt! - Date.now();
      await vi.advanceTimersByTimeAsync(delay);
    }
    expect(delay).toBe(10_000);
  });

  it('does not reconnect after the user pressed Disconnect, until Connect', async () => {
    const { controller, rfbs, last } = setup();
    controller.start();
    await vi.advanceTimersByTimeAsync(0);
    rfbs[0].connectOk();
    controller.disconnect();
    expect(rfbs[0].disconnected).toBe(true);
    expect(last()).toMatchObject({ state: 'disconnected', halted: 'user', retryAt: null });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(rfbs).toHaveLength(1);
    expect(last().halted).toBe('user');

    controller.connect();
    await vi.advanceTimersByTimeAsync(0);
    expect(rfbs).toHaveLength(2);
    expect(last().state).toBe('connecting');
  });

  it('Disconnect during a scheduled retry cancels it', async () => {
    const { controller, rfbs, last } = setup();
    controller.start();
    await vi.advanceTimersByTimeAsync(0);
    rfbs[0].drop(false);
    controller.disconnect();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(rfbs).toHaveLength(1);
    expect(last().halted).toBe('user');
  });

  it('gives up on a server that never finishes the handshake', async () => {
    const { controller, rfbs, last } = setup();
    controller.start();
    await vi.advanceTimersByTimeAsync(30_000);
    expect(rfbs[0].disconnected).toBe(true);
    expect(last()).toMatchObject({ state: 'disconnected', reason: 'the desktop did not answer' });
  });

  it('treats a password prompt as fatal', async () => {
    const { controller, rfbs, last } = setup();
    controller.start();
    await vi.advanceTimersByTimeAsync(0);
    rfbs[0].dispatchEvent(new CustomEvent('credentialsrequired', { detail: { types: ['password'] } }));
    await vi.advanceTimersByTimeAsync(0);
    expect(last()).toMatchObject({ state: 'disconnected', halted: 'desktop', retryAt: null });
    expect(last().reason).toContain('credentials');
  });

  it('waits while the desktop starts, then connects', async () => {
    const { controller, rfbs, last } = setup({ statuses: ['starting', 'starting', 'running'] });
    controller.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(last()).toMatchObject({ state: 'connecting', reason: 'the desktop is starting' });
    expect(rfbs).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(2000);
    expect(rfbs).toHaveLength(1);
  });

  it('starts a stopped desktop once when the page opens', async () => {
    const startDesktop = vi.fn(async () => undefined);
    const { controller, rfbs } = setup({ statuses: ['stopped', 'running'], startDesktop });
    controller.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect(startDesktop).toHaveBeenCalledOnce();
    expect(rfbs).toHaveLength(1);
  });

  it('Connect starts a stopped desktop', async () => {
    const startDesktop = vi.fn(async () => undefined);
    const { controller, rfbs, last } = setup({ statuses: ['running', 'stopped', 'stopped', 'running'], startDesktop });
    controller.start();
    await vi.advanceTimersByTimeAsync(0);
    rfbs[0].drop(true);
    await vi.advanceTimersByTimeAsync(500);
    expect(last().halted).toBe('desktop');
    controller.connect();
    await vi.advanceTimersByTimeAsync(0);
    expect(startDesktop).toHaveBeenCalledOnce();
    await vi.advanceTimersByTimeAsync(1000);
    expect(rfbs).toHaveLength(2);
  });

  it('stops retrying when the desktop stopped later, or failed', async () => {
    const startDesktop = vi.fn(async () => undefined);
    const { controller, rfbs, last } = setup({ statuses: ['running', 'stopped'], startDesktop });
    controller.start();
    await vi.advanceTimersByTimeAsync(0);
    rfbs[0].connectOk();
    rfbs[0].drop(true);
    await vi.advanceTimersByTimeAsync(500);
    expect(last()).toMatchObject({ state: 'disconnected', halted: 'desktop', reason: 'the desktop is stopped' });
    expect(startDesktop).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(rfbs).toHaveLength(1);

    const failed = setup({ statuses: ['failed'] });
    failed.controller.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(failed.last()).toMatchObject({ halted: 'desktop', reason: 'the desktop failed' });
  });

  it('after a restart drops the old connection without counting it as lost', async () => {
    const { controller, rfbs, last, views } = setup();
    controller.start();
    await vi.advanceTimersByTimeAsync(0);
    rfbs[0].connectOk();
    controller.desktopRestarted();
    await vi.advanceTimersByTimeAsync(0);
    expect(rfbs[0].disconnected).toBe(true);
    expect(rfbs).toHaveLength(2);
    expect(last().state).toBe('connecting');
    expect(views.some((v) => v.reason === 'the connection was closed')).toBe(false);
  });

  it('retries when the RFB constructor throws', async () => {
    const controller = new ConnectionController({
      createRfb: () => {
        throw new SyntaxError('bad URL');
      },
      onView: () => undefined,
      backoff: new Backoff(DEFAULT_BACKOFF, () => 0),
    });
    controller.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(controller.current).toMatchObject({ state: 'disconnected', reason: 'cannot connect: bad URL' });
  });
});

describe('describeConnection', () => {
  const now = 1_000_000;
  it.each<[ConnectionView, string]>([
    [{ state: 'connected', reason: '', retryAt: null, halted: null }, 'Connected'],
    [{ state: 'connecting', reason: '', retryAt: null, halted: null }, 'Connecting…'],
    [{ state: 'connecting', reason: 'the desktop is starting', retryAt: null, halted: null }, 'The desktop is starting…'],
    [
      { state: 'disconnected', reason: 'could not connect', retryAt: now + 3200, halted: null },
      'Disconnected: could not connect · retry in 4 s',
    ],
    [{ state: 'disconnected', reason: 'x', retryAt: now - 5, halted: null }, 'Disconnected: x · retrying…'],
    [{ state: 'disconnected', reason: 'disconnected by you', retryAt: null, halted: 'user' }, 'Disconnected'],
    [
      { state: 'disconnected', reason: 'the desktop is stopped', retryAt: null, halted: 'desktop' },
      'Disconnected: the desktop is stopped',
    ],
  ])('%j', (view, text) => {
    expect(describeConnection(view, now)).toBe(text);
  });
});
