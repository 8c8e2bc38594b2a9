import { describe, expect, it, vi } from 'vitest';

import { describeExpiry, describeShare, parseShareState, sharesRequest } from './share';

const NOW = Date.parse('2026-12-07T12:00:00Z');

describe('parseShareState', () => {
  it('reads the rows it understands and leaves out the rest', () => {
    const state = parseShareState({
      shares: [
        { kind: 'user', name: 'erin', right: 'control', expires_at: '2026-12-07T13:00:00Z' },
        { kind: 'group', name: 'lab', right: 'watch', expires_at: null },
        { kind: 'robot', name: 'x' },
        { kind: 'user', name: '' },
        'junk',
        null,
      ],
      watching: [{ user: 'erin', role: 'control', connections: 2 }, { role: 'view' }, null],
    });
    expect(state.shares).toEqual([
      { kind: 'user', name: 'erin', right: 'control', expiresAt: '2026-12-07T13:00:00Z' },
      { kind: 'group', name: 'lab', right: 'watch', expiresAt: null },
    ]);
    expect(state.watching).toEqual([{ user: 'erin', role: 'control', connections: 2 }]);
    expect(parseShareState(null)).toEqual({ shares: [], watching: [] });
  });

  it('takes an unknown right for the lesser one', () => {
    expect(parseShareState({ shares: [{ kind: 'user', name: 'a', right: 'admin' }] }).shares[0].right).toBe('watch');
  });
});

describe('describeExpiry', () => {
  it('says when a share ends, in the largest units that matter', () => {
    expect(describeExpiry(null, NOW)).toBe('until you revoke it');
    expect(describeExpiry('2026-12-07T12:00:40Z', NOW)).toBe('ends in 40 s');
    expect(describeExpiry('2026-12-07T12:45:00Z', NOW)).toBe('ends in 45 min');
    expect(describeExpiry('2026-12-07T15:20:00Z', NOW)).toBe('ends in 3 h 20 min');
    expect(describeExpiry('2026-12-07T16:00:00Z', NOW)).toBe('ends in 4 h');
    expect(describeExpiry('2026-12-09T14:00:00Z', NOW)).toBe('ends in 2 d 2 h');
    expect(describeExpiry('2026-12-07T11:00:00Z', NOW)).toBe('ending now');
    expect(describeExpiry('not a date', NOW)).toBe('until you revoke it');
  });
});

describe('describeShare', () => {
  it('says the right, the end, and whether that user is watching now', () => {
    const erin = { kind: 'user' as const, name: 'erin', right: 'control' as const, expiresAt: null };
    expect(describeShare(erin, [], NOW)).toBe('may watch and control · until you revoke it');
    expect(describeShare(erin, [{ user: 'erin', role: 'control', connections: 1 }], NOW)).toBe(
      'may watch and control · until you revoke it · watching now',
    );
    expect(describeShare(erin, [{ user: 'erin', role: 'control', connections: 3 }], NOW)).toContain('(3 tabs)');
    const group = { kind: 'group' as const, name: 'erin', right: 'watch' as const, expiresAt: null };
    expect(describeShare(group, [{ user: 'erin', role: 'view', connections: 1 }], NOW)).toBe(
      'may watch · until you revoke it',
    );
  });
});

describe('sharesRequest', () => {
  it('sends JSON with the credentials and returns the new state', async () => {
    const fetchImpl = vi.fn(
      async () => new Response(JSON.stringify({ shares: [{ kind: 'user', name: 'erin' }], watching: [] })),
    );
    const state = await sharesRequest(
      '/user/dave/vnc/api/shares',
      { token: 't0k' },
      { method: 'POST', body: { user: 'erin', right: 'watch' } },
      fetchImpl as unknown as typeof fetch,
    );
    expect(state.shares.map((s) => s.name)).toEqual(['erin']);
    const [url, init] = fetchImpl.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe('/user/dave/vnc/api/shares');
    expect(init.method).toBe('POST');
    expect(init.body).toBe('{"user":"erin","right":"watch"}');
    expect((init.headers as Record<string, string>).Authorization).toBe('token t0k');
    expect((init.headers as Record<string, string>)['Content-Type']).toBe('application/json');
  });

  it("throws the server's message", async () => {
    const fetchImpl = vi.fn(
      async () => new Response(JSON.stringify({ message: 'No such user: zed' }), { status: 400 }),
    );
    await expect(
      sharesRequest('/s', {}, { method: 'POST', body: { user: 'zed' } }, fetchImpl as unknown as typeof fetch),
    ).rejects.toThrow('No such user: zed');
  });
});
