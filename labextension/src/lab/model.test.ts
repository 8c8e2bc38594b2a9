import { describe, expect, it } from 'vitest';

import {
  desktopOffered,
  desktopUrl,
  dueWarning,
  glLabel,
  parseLabStatus,
  stateLabel,
  statusText,
  statusTooltip,
  WarningLedger,
  warningMessage,
} from './model';

const running = {
  state: 'running',
  message: '',
  display: 3,
  width: 1280,
  height: 720,
  vnc_server: 'tigervnc',
  gpus: ['NVIDIA A100-SXM4-40GB'],
  gl: 'gpu',
  gl_renderer: 'NVIDIA A100-SXM4-40GB/PCIe/SSE2',
  job_id: '1234',
  seconds_left: 7500,
  uptime: 12,
};

describe('parseLabStatus', () => {
  it('reads the server status', () => {
    expect(parseLabStatus(running)).toEqual({
      state: 'running',
      message: '',
      width: 1280,
      height: 720,
      gpus: ['NVIDIA A100-SXM4-40GB'],
      gl: 'gpu',
      glRenderer: 'NVIDIA A100-SXM4-40GB/PCIe/SSE2',
      jobId: '1234',
      secondsLeft: 7500,
    });
  });

  it('accepts every state the server reports, "stopping" included', () => {
    for (const state of ['starting', 'running', 'stopping', 'stopped', 'failed']) {
      expect(parseLabStatus({ state })?.state).toBe(state);
    }
  });

  it('refuses what is not a status', () => {
    for (const raw of [null, 'running', [], {}, { state: 'bogus' }, { state: 3 }]) {
      expect(parseLabStatus(raw)).toBeNull();
    }
  });

  it('falls back on wrong types', () => {
    const s = parseLabStatus({ state: 'stopped', width: 'x', gpus: ['', 7, 'T4'], job_id: 42, seconds_left: -5 });
    expect(s).toMatchObject({ width: 0, gpus: ['T4'], jobId: '42', secondsLeft: 0, gl: '' });
    expect(parseLabStatus({ state: 'stopped', job_id: null, seconds_left: null })).toMatchObject({
      jobId: null,
      secondsLeft: null,
    });
  });
});

describe('labels', () => {
  it('names each state', () => {
    expect(stateLabel('running')).toBe('running');
    expect(stateLabel('starting')).toBe('starting…');
    expect(stateLabel('stopped')).toBe('not started');
    expect(stateLabel('failed')).toBe('failed');
    expect(stateLabel('stopping')).toBe('stopping…');
    expect(stateLabel(null)).toBe('unavailable');
  });

  it('names the renderer the probe found, or software GL, never a guess', () => {
    expect(glLabel({ gl: 'gpu', glRenderer: 'NVIDIA H200/PCIe/SSE2' })).toBe('GPU OpenGL: NVIDIA H200');
    // GPUs in the job but OpenGL in software (no EGL/GLX on them): what the user gets is software GL.
    expect(glLabel({ gl: 'software', glRenderer: 'llvmpipe (LLVM 15.0.6, 256 bits)' })).toBe('software GL');
    expect(glLabel({ gl: '', glRenderer: '' })).toBe('GL: not probed yet');
    expect(glLabel({ gl: 'gpu', glRenderer: '' })).toBe('GL: not probed yet');
  });

  it('puts state, GPU, resolution and time left in the status bar', () => {
    expect(statusText(parseLabStatus(running))).toBe(
      'Desktop: running · GPU OpenGL: NVIDIA A100-SXM4-40GB · 1280×720 · 2 h 05 min left',
    );
    const sw = parseLabStatus({ ...running, gl: 'software', gpus: [], seconds_left: null, state: 'stopped' });
    expect(statusText(sw)).toBe('Desktop: not started · software GL · 1280×720');
    expect(statusText(null)).toBe('Desktop: unavailable');
  });

  it('explains details in the tooltip', () => {
    const tip = statusTooltip(parseLabStatus({ ...running, message: 'Desktop started' }));
    expect(tip).toContain('Desktop started');
    expect(tip).toContain('OpenGL renderer: NVIDIA A100-SXM4-40GB/PCIe/SSE2');
    expect(tip).toContain('Slurm job 1234: 2 h 05 min left');
    expect(statusTooltip(null, 'HTTP 403')).toMatch(/^Desktop status unavailable: HTTP 403\n/);
    expect(statusTooltip(parseLabStatus({ state: 'running', job_id: '9' }))).toContain('Slurm job 9, no time limit');
  });

  it('builds the desktop URL under any server prefix', () => {
    expect(desktopUrl('http://h/user/carol/')).toBe('http://h/user/carol/vnc/');
    expect(desktopUrl('http://h/user/carol/viz')).toBe('http://h/user/carol/viz/vnc/');
    expect(desktopUrl('/')).toBe('/vnc/');
  });
});

describe('walltime warnings', () => {
  it('is due at 10 and 2 minutes, once each', () => {
    expect(dueWarning(601, new Set())).toBeNull();
    expect(dueWarning(600, new Set())).toEqual({ threshold: 600, crossed: [600] });
    expect(dueWarning(300, new Set([600]))).toBeNull();
    expect(dueWarning(120, new Set([600]))).toEqual({ threshold: 120, crossed: [120] });
    expect(dueWarning(10, new Set([600, 120]))).toBeNull();
  });

  it('gives one warning, the most urgent, for thresholds crossed together', () => {
    expect(dueWarning(90, new Set())).toEqual({ threshold: 120, crossed: [120, 600] });
  });

  it('never warns without a time limit', () => {
    expect(dueWarning(null, new Set())).toBeNull();
  });

  it('says how long is left', () => {
    expect(warningMessage(598, '77')).toBe(
      'Your Slurm job 77 ends in 9\u00a0min\u00a058\u00a0s: the desktop and JupyterLab stop then. Save your work.',
    );
    expect(warningMessage(0, null)).toMatch(/^Your Slurm job is ending now/);
  });

  it('follows a job as polls come in', () => {
    const ledger = new WarningLedger();
    const seen = (jobId: string | null, secondsLeft: number | null) => ledger.check({ jobId, secondsLeft })?.threshold ?? null;
    const polls = [7200, 900, 615, 600, 585, 300, 125, 119, 104, 5, 0].map(s => seen('1', s));
    expect(polls).toEqual([null, null, null, 600, null, null, null, 120, null, null, null]);
    // A new job (the server was restarted) starts afresh.
    expect(seen('2', 500)).toBe(600);
    // An extended time limit re-arms the warnings it moved away from.
    expect(seen('2', 3600)).toBeNull();
    expect(seen('2', 590)).toBe(600);
    expect(seen(null, null)).toBeNull();
  });
});

describe('desktopOffered', () => {
  it('shows the desktop where the server says one can run', () => {
    expect(desktopOffered('available')).toBe(true);
  });

  it('hides it where no Xvnc is installed, where jupyter-vnc is off, and on anything else', () => {
    // "" is what PageConfig.getOption gives for an entry the server did not write (extension off).
    for (const value of ['unavailable', '', undefined, null, true, 'Available', 'available ']) {
      expect(desktopOffered(value)).toBe(false);
    }
  });
});
