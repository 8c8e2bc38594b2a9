import { describe, expect, it } from 'vitest';

import { Backoff, backoffDelay, DEFAULT_BACKOFF, nominalDelay } from './backoff';

describe('nominalDelay', () => {
  it('doubles from 0.5 s up to the 10 s cap', () => {
    const schedule = Array.from({ length: 8 }, (_, i) => nominalDelay(i));
    expect(schedule).toEqual([500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
  });

  it('stays finite and capped for huge or odd attempt numbers', () => {
    expect(nominalDelay(10_000)).toBe(10_000);
    expect(nominalDelay(-3)).toBe(500);
    expect(nominalDelay(2.7)).toBe(2000);
  });
});

describe('backoffDelay', () => {
  it('takes at most the jitter fraction off, never adds', () => {
    expect(backoffDelay(3, DEFAULT_BACKOFF, () => 0)).toBe(4000);
    expect(backoffDelay(3, DEFAULT_BACKOFF, () => 0.999999)).toBe(3000);
    expect(backoffDelay(20, DEFAULT_BACKOFF, () => 0)).toBe(10_000);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(i % 10);
      expect(d).toBeGreaterThanOrEqual(0.75 * nominalDelay(i % 10) - 1);
      expect(d).toBeLessThanOrEqual(DEFAULT_BACKOFF.maxMs);
    }
  });

  it('clamps a misbehaving random source', () => {
    expect(backoffDelay(0, DEFAULT_BACKOFF, () => 7)).toBe(375);
    expect(backoffDelay(0, DEFAULT_BACKOFF, () => -1)).toBe(500);
  });
});

describe('Backoff', () => {
  it('grows with each failure and starts over after reset', () => {
    const b = new Backoff(DEFAULT_BACKOFF, () => 0);
    expect([b.next(), b.next(), b.next()]).toEqual([500, 1000, 2000]);
    expect(b.attempts).toBe(3);
    b.reset();
    expect(b.attempts).toBe(0);
    expect(b.next()).toBe(500);
  });
});
