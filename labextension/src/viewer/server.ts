/** Calls to the server extension: the status GET and the (re)start POST. */

import { parseStatus, type DesktopStatus } from './status';

/** The value of cookie `name` in a `document.cookie` string; the first one wins (the most specific path). */
export function cookieValue(cookies: string, name: string): string | null {
  for (const part of cookies.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) {
      continue;
    }
    if (part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim();
      try {
        return decodeURIComponent(value);
      } catch {
        return value;
      }
    }
  }
  return null;
}

/**
 * GET the status; null when the server has none to give (error, not JSON, not a status). Behind
 * JupyterHub a cookie-authenticated fetch (a CORS-mode request) is refused without the XSRF header,
 * GETs included.
 */
export async function fetchStatus(
  url: string,
  xsrfToken: string | null = null,
  fetchImpl: typeof fetch = fetch,
): Promise<DesktopStatus | null> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (xsrfToken) {
    headers['X-XSRFToken'] = xsrfToken;
  }
  const response = await fetchImpl(url, { credentials: 'same-origin', cache: 'no-store', headers });
  if (!response.ok) {
    return null;
  }
  try {
    return parseStatus(await response.json());
  } catch {
    return null;
  }
}

/** The most useful text out of an error response body: Jupyter's JSON `message` / `reason`, or its status. */
export function errorMessage(status: number, statusText: string, body: string): string {
  try {
    const obj = JSON.parse(body) as Record<string, unknown>;
    for (const key of ['message', 'reason', 'error']) {
      const v = obj?.[key];
      if (typeof v === 'string' && v.trim()) {
        return v.trim();
      }
    }
  } catch {
    // not JSON
  }
  return `${status} ${statusText}`.trim();
}

/** `url` with `name=value` added to its query string. */
export function withQuery(url: string, name: string, value: string): string {
  const hash = url.indexOf('#');
  const base = hash < 0 ? url : url.slice(0, hash);
  const sep = base.includes('?') ? (base.endsWith('?') || base.endsWith('&') ? '' : '&') : '?';
  return `${base}${sep}${encodeURIComponent(name)}=${encodeURIComponent(value)}`;
}

/**
 * POST to desktop_url: starts the desktop, or with `restart` (query `restart=1`) restarts it. Jupyter
 * rejects a POST without the XSRF token, which the page reads from the `_xsrf` cookie (or the config's
 * fallback) and sends as X-XSRFToken.
 */
export async function postDesktop(
  url: string,
  xsrfToken: string | null,
  options: { restart?: boolean } = {},
  fetchImpl: typeof fetch = fetch,
): Promise<void> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json', Accept: 'application/json' };
  if (xsrfToken) {
    headers['X-XSRFToken'] = xsrfToken;
  }
  const response = await fetchImpl(options.restart ? withQuery(url, 'restart', '1') : url, {
    method: 'POST',
    credentials: 'same-origin',
    cache: 'no-store',
    headers,
    body: '{}',
  });
  if (!response.ok) {
    const body = await response.text().catch(() => '');
    throw new Error(errorMessage(response.status, response.statusText, body));
  }
}
