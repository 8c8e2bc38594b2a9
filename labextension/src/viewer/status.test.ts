import { describe, expect, it } from 'vitest';

import {
  formatTimeLeft,
  parseStatus,
  pausedLabel,
  secondsLeftAt,
  shareLabel,
  summarizeStatus,
  timeLeftUrgency,
} from './status';

const running = {
  state: 'running',
  message: '',
  width: 1920,
  height: 1080,
  vnc_server: 'turbovnc',
  gpus: ['NVIDIA A100-SXM4-40GB'],
  gl: 'gpu',
  gl_renderer: 'NVIDIA A100/PCIe/SSE2',
  job_id: '4242',
  seconds_left: 7500,
};

describe('formatTimeLeft', () => {
  it.each([
    [0, 'time is up'],
    [-5, 'time is up'],
    [45, '45 s left'],
    [60, '1 min 00 s left'],
    [545, '9 min 05 s left'],
    [600, '10 min left'],
    [3599, '59 min left'],
    [3600, '1 h 00 min left'],
    [7500, '2 h 05 min left'],
    [86_399, '23 h 59 min left'],
    [86_400 * 3 + 4 * 3600 + 59, '3 d 4 h left'],
    [12.9, '12 s left'],
  ])('%s s → %s', (seconds, text) => {
    expect(formatTimeLeft(seconds)).toBe(text);
  });
});

describe('timeLeftUrgency', () => {
  it('warns under 15 min, alarms under 5', () => {
    expect(timeLeftUrgency(3600)).toBe('ok');
    expect(timeLeftUrgency(900)).toBe('ok');
    expect(timeLeftUrgency(899)).toBe('warn');
    expect(timeLeftUrgency(299)).toBe('critical');
  });
});

describe('secondsLeftAt', () => {
  it('counts down from the time of the fetch and stops at 0', () => {
    expect(secondsLeftAt(100, 1_000_000, 1_000_000)).toBe(100);
    expect(secondsLeftAt(100, 1_000_000, 1_010_999)).toBe(90);
    expect(secondsLeftAt(100, 1_000_000, 2_000_000)).toBe(0);
    expect(secondsLeftAt(100, 1_000_000, 900_000)).toBe(100); // clock went back
  });
});

describe('parseStatus', () => {
  it('reads a full status', () => {
    expect(parseStatus(running)).toEqual({
      state: 'running',
      message: '',
      width: 1920,
      height: 1080,
      vncServer: 'turbovnc',
      gpus: ['NVIDIA A100-SXM4-40GB'],
      gl: 'gpu',
      glRenderer: 'NVIDIA A100/PCIe/SSE2',
      glNotice: '',
      jobId: '4242',
      secondsLeft: 7500,
      role: 'owner',
      owner: '',
      watchers: [],
      paused: false,
      shutdownIn: null,
      shutdownMinutes: null,
      nativeClient: null,
    });
  });

  it('reads the native-client commands only when both are there', () => {
    const commands = { ssh: 'ssh -N -L 5901:/tmp/d/vnc.sock alice@node1', viewer: 'vncviewer localhost::5901' };
    expect(parseStatus({ state: 'running', native_client: commands })?.nativeClient).toEqual(commands);
    expect(parseStatus({ state: 'running', native_client: { ssh: 'ssh' } })?.nativeClient).toBeNull();
    expect(parseStatus({ state: 'running', native_client: 'ssh' })?.nativeClient).toBeNull();
  });

  it('reads who may do what, and the idle state', () => {
    const s = parseStatus({
      state: 'running',
      you: { user: 'bob', role: 'view' },
      owner: 'alice',
      watchers: [{ user: 'bob', role: 'control' }, { user: 3 }, null],
      idle: { paused: true, shutdown_in: 299.7, shutdown_minutes: 30 },
    });
    expect(s).toMatchObject({
      role: 'view',
      owner: 'alice',
      watchers: [{ user: 'bob', role: 'control' }],
      paused: true,
      shutdownIn: 299,
      shutdownMinutes: 30,
    });
    // An unknown role is the least one.
    expect(parseStatus({ state: 'running', you: { role: 'god' } })?.role).toBe('view');
  });

  it('rejects what is no status', () => {
    expect(parseStatus(null)).toBeNull();
    expect(parseStatus('running')).toBeNull();
    expect(parseStatus({ state: 'exploded' })).toBeNull();
    expect(parseStatus({})).toBeNull();
  });

  it('tolerates missing and mistyped fields', () => {
    const s = parseStatus({ state: 'starting', width: '1024', gpus: ['', 3, 'GPU 0'], job_id: 17, seconds_left: null });
    expect(s).toMatchObject({ state: 'starting', width: 0, gpus: ['GPU 0'], jobId: '17', secondsLeft: null });
  });
});

describe('summarizeStatus', () => {
  it('names the server, the size and the renderer the probe found', () => {
    const summary = summarizeStatus(parseStatus(running)!);
    expect(summary.parts).toEqual(['TurboVNC', '1920×1080', 'GPU OpenGL: NVIDIA A100']);
    expect(summary.softwareGl).toBe(false);
    expect(summary.detail).toContain('Slurm job 4242');
  });

  it('gives the software OpenGL notice without a GPU', () => {
    const summary = summarizeStatus(parseStatus({ ...running, vnc_server: 'tigervnc', gpus: [], gl: 'software' })!);
    expect(summary.parts).toEqual(['TigerVNC', '1920×1080', 'software OpenGL']);
    expect(summary.softwareGl).toBe(true);
  });

  it('lists the GPUs while OpenGL is not probed yet, never guessing the renderer', () => {
    const summary = summarizeStatus(parseStatus({ ...running, gl: '', gl_renderer: '', gpus: ['GPU 0', 'GPU 1'] })!);
    expect(summary.parts[2]).toBe('GPUs: GPU 0, GPU 1');
    expect(summary.parts).toHaveLength(3);
  });

  it('says software OpenGL next to GPUs that OpenGL cannot use', () => {
    const summary = summarizeStatus(
      parseStatus({ ...running, gl: 'software', gl_renderer: 'llvmpipe (LLVM 15.0.6, 256 bits)' })!,
    );
    expect(summary.parts.slice(2)).toEqual(['GPU: NVIDIA A100-SXM4-40GB', 'software OpenGL']);
    expect(summary.softwareGl).toBe(true);
  });
});

describe('shareLabel', () => {
  it('tells a recipient whose desktop it is and what they may do', () => {
    expect(shareLabel({ role: 'view', owner: 'alice', watchers: [] })).toBe('View only — shared by alice');
    expect(shareLabel({ role: 'control', owner: 'alice', watchers: [] })).toBe('Shared by alice — you have control');
  });
  it('tells the owner who is watching, and nothing when nobody is', () => {
    expect(shareLabel({ role: 'owner', owner: 'alice', watchers: [] })).toBe('');
    expect(
      shareLabel({
        role: 'owner',
        owner: 'alice',
        watchers: [
          { user: 'bob', role: 'view' },
          { user: 'carol', role: 'control' },
        ],
      }),
    ).toBe('Watching: bob (view only), carol (control)');
  });
});

describe('pausedLabel', () => {
  it('counts down to the idle shutdown', () => {
    expect(pausedLabel({ shutdownIn: 300 }, 1)).toContain('The desktop ends in 4 min 59 s unless you keep it.');
    expect(pausedLabel({ shutdownIn: 3 }, 10)).toContain('The desktop is ending.');
    expect(pausedLabel({ shutdownIn: null }, 0)).toContain('Resume to go on.');
  });
});
