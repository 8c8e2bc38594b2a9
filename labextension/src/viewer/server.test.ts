import { describe, expect, it, vi } from 'vitest';

import { authHeaders, cookieValue, errorMessage, fetchStatus, postDesktop, withQuery } from './server';

describe('cookieValue', () => {
  it('finds the cookie, first one first, decoded', () => {
    const cookies = 'jupyterhub-session-id=abc; _xsrf=2|aa%7Cbb|cc; _xsrf=other';
    expect(cookieValue(cookies, '_xsrf')).toBe('2|aa|bb|cc');
    expect(cookieValue(cookies, 'missing')).toBeNull();
    expect(cookieValue('', '_xsrf')).toBeNull();
    expect(cookieValue('x_xsrf=1; _xsrf=2', '_xsrf')).toBe('2');
    expect(cookieValue('_xsrf=%E0%A4%A', '_xsrf')).toBe('%E0%A4%A');
  });
});

describe('authHeaders', () => {
  it('sends the XSRF token and the API token, each only when there is one', () => {
    expect(authHeaders({})).toEqual({});
    expect(authHeaders({ xsrfToken: null, token: '' })).toEqual({});
    expect(authHeaders({ xsrfToken: 'x|y' })).toEqual({ 'X-XSRFToken': 'x|y' });
    expect(authHeaders({ token: 'abc123' })).toEqual({ Authorization: 'token abc123' });
    expect(authHeaders({ xsrfToken: 'x|y', token: 'abc123' })).toEqual({
      'X-XSRFToken': 'x|y',
      Authorization: 'token abc123',
    });
  });
});

describe('errorMessage', () => {
  it("prefers Jupyter's JSON message", () => {
    expect(errorMessage(403, 'Forbidden', '{"message": "\'_xsrf\' argument missing from POST"}')).toBe(
      "'_xsrf' argument missing from POST",
    );
    expect(errorMessage(500, 'Internal Server Error', '<html>')).toBe('500 Internal Server Error');
  });
});

const jsonResponse = (body: unknown, status = 200): Response =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });

describe('fetchStatus', () => {
  it('returns the parsed status, or null on an error answer or non-status', async () => {
    const ok = vi.fn(async () => jsonResponse({ state: 'running', width: 800, height: 600 }));
    expect(await fetchStatus('/s', {}, ok as unknown as typeof fetch)).toMatchObject({ state: 'running', width: 800 });
    expect(ok).toHaveBeenCalledWith('/s', expect.objectContaining({ credentials: 'same-origin', cache: 'no-store' }));
    const notFound = async () => jsonResponse({ message: 'no' }, 404);
    expect(await fetchStatus('/s', {}, notFound as unknown as typeof fetch)).toBeNull();
    const html = async () => new Response('<html>', { status: 200 });
    expect(await fetchStatus('/s', {}, html as unknown as typeof fetch)).toBeNull();
  });

  it('takes a 403 for final: the desktop says why, or the login layer refused before it', async () => {
    const own = async () => jsonResponse({ state: 'refused', message: 'this desktop is no longer shared with you' }, 403);
    expect(await fetchStatus('/s', {}, own as unknown as typeof fetch)).toMatchObject({
      state: 'refused',
      message: 'this desktop is no longer shared with you',
    });
    const login = async () => jsonResponse({ status: 403, message: 'Forbidden' }, 403);
    expect(await fetchStatus('/s', {}, login as unknown as typeof fetch)).toMatchObject({
      state: 'refused',
      message: 'you may no longer see this desktop (Forbidden)',
    });
    const page = async () => new Response('<html>403</html>', { status: 403, statusText: 'Forbidden' });
    expect((await fetchStatus('/s', {}, page as unknown as typeof fetch))?.state).toBe('refused');
  });

  it('sends the XSRF token when it has one (JupyterHub refuses a cookie-authenticated fetch without)', async () => {
    const ok = vi.fn(async (_url: string, _init: RequestInit) => jsonResponse({ state: 'running' }));
    await fetchStatus('/s', { xsrfToken: 'tok|en' }, ok as unknown as typeof fetch);
    expect(ok.mock.calls[0][1].headers).toEqual({ Accept: 'application/json', 'X-XSRFToken': 'tok|en' });
    await fetchStatus('/s', {}, ok as unknown as typeof fetch);
    expect(ok.mock.calls[1][1].headers).toEqual({ Accept: 'application/json' });
  });

  it('sends the API token as an Authorization header (JupyterHub without cookie auth)', async () => {
    const ok = vi.fn(async (_url: string, _init: RequestInit) => jsonResponse({ state: 'running' }));
    await fetchStatus('/s', { xsrfToken: 'tok|en', token: 'abc123' }, ok as unknown as typeof fetch);
    expect(ok.mock.calls[0][1].headers).toEqual({
      Accept: 'application/json',
      'X-XSRFToken': 'tok|en',
      Authorization: 'token abc123',
    });
  });
});

describe('postDesktop', () => {
  it('POSTs with the X-XSRFToken header', async () => {
    const fake = vi.fn(async (_url: string, _init?: RequestInit) => jsonResponse({ state: 'starting' }, 202));
    await postDesktop('/user/alice/vnc/api/desktop', { xsrfToken: 'tok|en' }, {}, fake as unknown as typeof fetch);
    const [url, init] = fake.mock.calls[0];
    expect(url).toBe('/user/alice/vnc/api/desktop');
    expect(init?.method).toBe('POST');
    expect((init?.headers as Record<string, string>)['X-XSRFToken']).toBe('tok|en');
    expect(init?.headers).not.toHaveProperty('Authorization');
  });

  it('POSTs with the API token too when it has one', async () => {
    const fake = vi.fn(async (_url: string, _init?: RequestInit) => jsonResponse({ state: 'starting' }, 202));
    await postDesktop('/d', { xsrfToken: 'tok|en', token: 'abc123' }, {}, fake as unknown as typeof fetch);
    expect(fake.mock.calls[0][1]?.headers).toEqual({
      'Content-Type': 'application/json',
      Accept: 'application/json',
      'X-XSRFToken': 'tok|en',
      Authorization: 'token abc123',
    });
  });

  it('asks for a restart with ?restart=1', async () => {
    const fake = vi.fn(async (_url: string, _init?: RequestInit) => jsonResponse({ state: 'starting' }));
    await postDesktop('/user/alice/vnc/api/desktop', { xsrfToken: 't' }, { restart: true }, fake as unknown as typeof fetch);
    expect(fake.mock.calls[0][0]).toBe('/user/alice/vnc/api/desktop?restart=1');
  });

  it('throws the server message on failure', async () => {
    const fake = async () => jsonResponse({ message: 'no desktop for you' }, 403);
    await expect(postDesktop('/d', {}, {}, fake as unknown as typeof fetch)).rejects.toThrow('no desktop for you');
  });
});

describe('withQuery', () => {
  it('appends to any query string and drops a fragment', () => {
    expect(withQuery('/a', 'restart', '1')).toBe('/a?restart=1');
    expect(withQuery('/a?x=2', 'restart', '1')).toBe('/a?x=2&restart=1');
    expect(withQuery('/a?', 'restart', '1')).toBe('/a?restart=1');
    expect(withQuery('/a#top', 'restart', '1')).toBe('/a?restart=1');
  });
});
