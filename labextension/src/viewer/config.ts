/**
 * The viewer's configuration, as the server extension renders it into the standalone page's
 * `<script type="application/json" id="jvnc-config">` and answers it to the JupyterLab tab
 * (GET vnc/api/config). Every key is optional here: a missing or mistyped value falls back to a default,
 * so an older or newer server never leaves the viewer blank.
 */

import { withQuery } from './server';
import type { ViewerSettings } from './settings';
import { parseStatus, type DesktopStatus } from './status';

export interface ViewerConfig {
  /** Path (absolute, or relative to the page) of the RFB websocket. */
  websocketPath: string;
  /** GET → desktop status JSON. Empty: no status line details, no start-on-open. */
  statusUrl: string;
  /** POST → (re)start the desktop. Empty: no Restart button. */
  desktopUrl: string;
  /** POST here when the user resumes a paused viewer or keeps an idle desktop; "" when the server has none. */
  activityUrl: string;
  /** Link back to JupyterLab. Empty: no link. */
  labUrl: string;
  /** Link to the hub control panel. Empty: no link. */
  hubUrl: string;
  /** GET/POST/DELETE the desktop's shares (the owner's Share panel). Empty: no hub, no sharing. */
  sharesUrl: string;
  /** The viewer page's path: the link a share recipient opens. */
  viewerUrl: string;
  /** The user's own default settings (JupyterLab's settings, in the Lab tab); the viewer's own changes win. */
  defaults?: Partial<ViewerSettings>;
  /** Clipboard sync with the remote desktop, both directions. */
  clipboard: boolean;
  /** document.title */
  title: string;
  /** XSRF token, only used when the `_xsrf` cookie cannot be read. */
  xsrfToken: string;
  /**
   * The user's API token: sent as `Authorization: token ...` on the viewer's fetches and as `?token=` in
   * the websocket URL, which is how JupyterHub authenticates a websocket when cookie authentication of
   * websockets is off. Empty: cookies only.
   */
  token: string;
  /**
   * The desktop's state as the page was served (state, message, idle: none of the slower details), so
   * that the first connection needs no status request first; null: ask (the JupyterLab tab).
   */
  initialStatus: DesktopStatus | null;
}

export const CONFIG_ELEMENT_ID = 'jvnc-config';

export const DEFAULT_CONFIG: Readonly<ViewerConfig> = Object.freeze({
  websocketPath: 'websockify',
  statusUrl: '',
  desktopUrl: '',
  activityUrl: '',
  labUrl: '',
  hubUrl: '',
  sharesUrl: '',
  viewerUrl: '',
  clipboard: true,
  title: 'Desktop',
  xsrfToken: '',
  token: '',
  initialStatus: null,
});

function str(value: unknown, fallback: string): string {
  return typeof value === 'string' ? value.trim() : fallback;
}

function bool(value: unknown, fallback: boolean): boolean {
  return typeof value === 'boolean' ? value : fallback;
}

/** Turns the server's snake_case JSON object into a complete ViewerConfig. */
export function parseConfig(raw: unknown): ViewerConfig {
  const obj: Record<string, unknown> =
    raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
  const d = DEFAULT_CONFIG;
  return {
    websocketPath: str(obj.websocket_path, d.websocketPath) || d.websocketPath,
    statusUrl: str(obj.status_url, d.statusUrl),
    desktopUrl: str(obj.desktop_url, d.desktopUrl),
    activityUrl: str(obj.activity_url, d.activityUrl),
    labUrl: str(obj.lab_url, d.labUrl),
    hubUrl: str(obj.hub_url, d.hubUrl),
    sharesUrl: str(obj.shares_url, d.sharesUrl),
    viewerUrl: str(obj.viewer_url, d.viewerUrl),
    clipboard: bool(obj.clipboard, d.clipboard),
    title: str(obj.title, d.title) || d.title,
    xsrfToken: str(obj.xsrf_token, d.xsrfToken),
    token: str(obj.token, d.token),
    initialStatus: parseStatus(obj.initial_status),
  };
}

/** Parses the JSON text of the config element; broken JSON gives the defaults (and a console warning). */
export function parseConfigText(text: string | null | undefined): ViewerConfig {
  if (!text || !text.trim()) {
    return parseConfig({});
  }
  try {
    return parseConfig(JSON.parse(text));
  } catch (err) {
    console.warn('jupyter-vnc: unreadable page configuration, using defaults', err);
    return parseConfig({});
  }
}

export function readConfig(doc: Document): ViewerConfig {
  return parseConfigText(doc.getElementById(CONFIG_ELEMENT_ID)?.textContent);
}

/**
 * The websocket URL for `path` as seen from the page at `pageHref`: same host, ws: for http:, wss: for
 * https:. Query strings in `path` are kept, fragments dropped. A non-empty `token` is added as the query
 * parameter `token`: a browser cannot set headers on a websocket, so this is where JupyterHub looks.
 */
export function websocketUrl(path: string, pageHref: string, token = ''): string {
  const url = new URL(path, pageHref);
  if (url.protocol === 'https:' || url.protocol === 'wss:') {
    url.protocol = 'wss:';
  } else {
    url.protocol = 'ws:';
  }
  url.hash = '';
  return token ? withQuery(url.href, 'token', token) : url.href;
}
