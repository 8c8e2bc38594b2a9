/** Calls to the server extension (the status GET, the (re)start POST) and the headers that authenticate them. */

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

/** What a request carries besides the cookies. */
export interface Credentials {
  /** Sent as X-XSRFToken: Jupyter refuses a cookie-authenticated fetch without it. */
  xsrfToken?: string | null;
  /** The user's API token, sent as `Authorization: token ...`. */
  token?: string;
}

/**
 * The authentication headers for `credentials`. The token authenticates on its own, so the request no
 * longer depends on JupyterHub accepting cookies; the XSRF header is sent as well for servers (and
 * pages) that authenticate by cookie.
 */
export function authHeaders(credentials: Credentials): Record<string, string> {
  const headers: Record<string, string> = {};
  if (credentials.xsrfToken) {
    headers['X-XSRFToken'] = credentials.xsrfToken;
  }
  if (credentials.token) {
    headers.Authorization = `token ${credentials.token}`;
  }
  return headers;
}

/**
 * GET the status; null when the server has none to give (error, not JSON, not a status). Behind
 * JupyterHub a cookie-authenticated fetch (a CORS-mode request) is refused without the XSRF header,
 * GETs included.
 */
export async function fetchStatus(
  url: string,
  credentials: Credentials = {},
  fetchImpl: typeof fetch = fetch,
): Promise<DesktopStatus | null> {
  const headers = { Accept: 'application/json', ...authHeaders(credentials) };
  const response = await fetchImpl(url, { credentials: 'same-origin', cache: 'no-store', headers });
  // 403 with a status body: this user may no longer see the desktop (the server says why).
  if (!response.ok && response.status !== 403) {
    return null;
  }
  const body = await response.text().catch(() => '');
  let status: DesktopStatus | null = null;
  try {
    status = parseStatus(JSON.parse(body));
  } catch {
    status = null;
  }
  if (status === null && response.status === 403) {
    // Refused before the desktop's own handler (the server's login layer, once the hub has taken the
    // access back): as final as the desktop's own refusal. Retrying would only ask again, forever.
    const why = errorMessage(response.status, response.statusText, body);
    return parseStatus({ state: 'refused', message: `you may no longer see this desktop (${why})` });
  }
  return status;
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
 * rejects a POST without the XSRF token (which the viewer reads from the `_xsrf` cookie, or the config's
 * fallback) unless the API token authenticates it.
 */
export async function postDesktop(
  url: string,
  credentials: Credentials,
  options: { restart?: boolean } = {},
  fetchImpl: typeof fetch = fetch,
): Promise<void> {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json', ...authHeaders(credentials) };
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

/** POST activity_url: the user is here (Resume on a paused viewer, Keep it before an idle shutdown). */
export async function postActivity(url: string, credentials: Credentials, fetchImpl: typeof fetch = fetch): Promise<void> {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json', ...authHeaders(credentials) };
  const response = await fetchImpl(url, { method: 'POST', credentials: 'same-origin', cache: 'no-store', headers, body: '{}' });
  if (!response.ok) {
    const body = await response.text().catch(() => '');
    throw new Error(errorMessage(response.status, response.statusText, body));
  }
}
