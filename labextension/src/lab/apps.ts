/**
 * The admin's apps as launcher tiles: each opens the desktop in a browser tab and starts its app there
 * (POST <base_url>vnc/api/apps/<name>). The list, the icons and the start come from the server; the
 * commands stay on the server (a tile only names its app).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';

import { type LabApp, parseApps, pngAsSvg } from './model';

function appsUrl(settings: ServerConnection.ISettings, ...parts: string[]): string {
  return URLExt.join(settings.baseUrl, 'vnc', 'api', 'apps', ...parts.map(encodeURIComponent));
}

export async function fetchApps(settings: ServerConnection.ISettings): Promise<LabApp[]> {
  const response = await ServerConnection.makeRequest(appsUrl(settings), { cache: 'no-store' }, settings);
  if (!response.ok) {
    return [];
  }
  return parseApps(await response.json().catch(() => null));
}

/** The app's own icon; null when it has none or it cannot be read (the desktop's icon is used). */
export async function fetchAppIcon(settings: ServerConnection.ISettings, app: LabApp): Promise<LabIcon | null> {
  if (!app.icon) {
    return null;
  }
  const response = await ServerConnection.makeRequest(appsUrl(settings, app.name, 'icon'), {}, settings);
  if (!response.ok) {
    return null;
  }
  const type = response.headers.get('Content-Type') ?? '';
  let svgstr: string;
  if (type.startsWith('image/svg')) {
    svgstr = await response.text();
  } else {
    const blob = await response.blob();
    svgstr = pngAsSvg(
      await new Promise<string>((resolve, reject) => {
        const reader = new FileReader();
        reader.onload = () => resolve(String(reader.result));
        reader.onerror = () => reject(reader.error);
        reader.readAsDataURL(blob);
      }),
    );
  }
  return new LabIcon({ name: `jupyter-vnc:app-${app.name}`, svgstr });
}

/** POST: start the app in the desktop; the server's message on failure. */
export async function startApp(settings: ServerConnection.ISettings, name: string): Promise<void> {
  const response = await ServerConnection.makeRequest(appsUrl(settings, name), { method: 'POST', body: '{}' }, settings);
  if (!response.ok) {
    const body: unknown = await response.json().catch(() => null);
    const message = body && typeof body === 'object' ? (body as Record<string, unknown>).message : null;
    throw new Error(typeof message === 'string' && message ? message : `HTTP ${response.status}`);
  }
}
