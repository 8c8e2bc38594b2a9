/**
 * Reconnect delays: exponential growth with a cap and random jitter.
 *
 * Jitter only ever shortens a delay (by up to `jitter` of it), so the cap holds, and many browsers that lost
 * their desktops at the same moment (a node reboot) do not all come back in the same millisecond.
 */

export interface BackoffOptions {
  /** Delay before the first retry, in ms. */
  initialMs: number;
  /** Upper bound of any delay, in ms. */
  maxMs: number;
  /** Growth per failed attempt. */
  factor: number;
  /** Fraction (0..1) of a delay that may be randomly taken off. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  initialMs: 500,
  maxMs: 10_000,
  factor: 2,
  jitter: 0.25,
};

/** The delay before retry number `attempt` (0-based) without jitter. */
export function nominalDelay(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF): number {
  const n = Math.max(0, Math.floor(attempt));
  // Stop multiplying once the cap is reached: factor ** n overflows to Infinity for large n anyway,
  // but this keeps the arithmetic obviously finite.
  let delay = options.initialMs;
  for (let i = 0; i < n && delay < options.maxMs; i++) {
    delay *= options.factor;
  }
  return Math.min(options.maxMs, delay);
}

/** The delay before retry number `attempt`, with jitter drawn from `random` (a number in [0, 1)). */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const nominal = nominalDelay(attempt, options);
  const jitter = Math.min(1, Math.max(0, options.jitter));
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(nominal * (1 - jitter * r));
}

/** Stateful schedule: `next()` after each failure, `reset()` after a successful connect. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly options: BackoffOptions = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {}

  /** How many retries were scheduled since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  next(): number {
    const delay = backoffDelay(this.attempt, this.options, this.random);
    this.attempt += 1;
    return delay;
  }

  reset(): void {
    this.attempt = 0;
  }
}
