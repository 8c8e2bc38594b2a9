/**
 * The GPU Desktop in a JupyterLab main-area tab, drawn in JupyterLab's own page. The viewer page
 * (<base_url>vnc/) cannot be framed: the server sends frame-ancestors 'none' on it, because on a hub
 * without per-user domains every user's server shares one origin and another user's page could frame
 * it too. So the tab loads the viewer's bundle and style from the server extension
 * (<base_url>vnc/static/), gets the viewer's configuration from GET <base_url>vnc/api/config, and
 * mounts the viewer on its own node, with JupyterLab's token for the requests and the websocket.
 */
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { parseConfig, type ViewerConfig } from '../viewer/config';
import type { ViewerSettings } from '../viewer/settings';
import { desktopIcon } from './icon';
import { ASSETS_KEY, viewerAssets } from './model';

/** What the tab uses of the viewer bundle (src/viewer/main.ts, loaded from the server at run time). */
export interface ViewerBundle {
  mountViewer(root: HTMLElement, config: ViewerConfig): { dispose(): void };
}

/** Adds the stylesheet to the page unless it is there already (a tab opened before), and waits for it. */
function loadStylesheet(href: string): Promise<void> {
  const links = document.head.querySelectorAll<HTMLLinkElement>('link[rel="stylesheet"]');
  if (Array.from(links).some((link) => link.href === href)) {
    return Promise.resolve();
  }
  return new Promise((resolve, reject) => {
    const link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = href;
    link.addEventListener('load', () => resolve(), { once: true });
    link.addEventListener(
      'error',
      () => {
        // Removed, so that the next tab tries again instead of taking it for loaded.
        link.remove();
        reject(new Error(`could not load ${href}`));
      },
      { once: true },
    );
    document.head.appendChild(link);
  });
}

/** "light" or "dark", as JupyterLab's current theme is (it marks its page's body). */
export function labTheme(body: HTMLElement): 'light' | 'dark' {
  return body.dataset.jpThemeLight === 'false' ? 'dark' : 'light';
}

export class DesktopPanel extends Widget {
  private viewer: { dispose(): void } | null = null;
  private loadStarted = false;
  // The viewer follows JupyterLab's theme, also when the user switches it.
  private readonly themeWatch = new MutationObserver(() => this.followTheme());

  constructor(
    private readonly settings: ServerConnection.ISettings,
    /** The user's defaults for the viewer (JupyterLab's settings for jupyter-vnc), read as the tab loads. */
    private readonly defaults: () => Partial<ViewerSettings> = () => ({}),
  ) {
    super();
    this.id = 'jupyter-vnc-desktop';
    this.addClass('jvnc-DesktopPanel');
    // Keys typed into the desktop are the desktop's: JupyterLab's shortcuts (Ctrl+S, Ctrl+Shift+C, ...)
    // must not fire on their way there.
    this.node.dataset.lmSuppressShortcuts = 'true';
    // Focusable, so that a tab activated before the desktop has connected holds the focus; the viewer
    // hands it to the desktop when it connects.
    this.node.tabIndex = -1;
    this.title.label = 'GPU Desktop';
    this.title.caption = 'GPU Desktop: the Linux desktop of this server';
    this.title.icon = desktopIcon;
    this.title.closable = true;
    this.followTheme();
    this.themeWatch.observe(document.body, { attributes: true, attributeFilter: ['data-jp-theme-light'] });
  }

  private followTheme(): void {
    this.node.dataset.theme = labTheme(document.body);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.viewer?.dispose();
    this.viewer = null;
    this.themeWatch.disconnect();
    super.dispose();
  }

  protected onCloseRequest(): void {
    // A closed tab is gone for good: Lumino's default only detaches it, which would keep its desktop
    // connection open in the background (and the tracker would show the stale panel again).
    this.dispose();
  }

  protected onAfterAttach(): void {
    // Loaded on first attach, not in the constructor: a tab restored with the layout but never shown
    // still gets its desktop once JupyterLab attaches it.
    if (!this.loadStarted) {
      this.loadStarted = true;
      void this.load();
    }
  }

  protected onActivateRequest(): void {
    // Keys typed after clicking the tab go to the desktop (or to the tab until the desktop is there).
    const canvas = this.node.querySelector<HTMLCanvasElement>('.jvnc-screen canvas');
    (canvas ?? this.node).focus({ preventScroll: true });
  }

  private async load(): Promise<void> {
    const base = PageConfig.getBaseUrl();
    // The versioned URLs, where the server gives them: the same cache entries as the viewer page's.
    const [versionedScript, versionedStyle] = viewerAssets(PageConfig.getOption(ASSETS_KEY));
    const script = versionedScript ?? URLExt.join(base, 'vnc/static/viewer.js');
    const style = versionedStyle ?? URLExt.join(base, 'vnc/static/viewer.css');
    try {
      const [bundle, config] = await Promise.all([
        // webpackIgnore: the browser loads the server's bundle as a native ES module; the lab build
        // must not try to resolve or bundle it (noVNC's top-level await does not belong in it).
        import(/* webpackIgnore: true */ script) as Promise<ViewerBundle>,
        this.fetchConfig(),
        loadStylesheet(new URL(style, window.location.href).href),
      ]);
      if (!this.isDisposed) {
        this.viewer = bundle.mountViewer(this.node, config);
      }
    } catch (error) {
      if (!this.isDisposed) {
        const message = document.createElement('p');
        message.className = 'jvnc-DesktopPanel-error';
        message.setAttribute('role', 'alert');
        message.textContent = `Could not load the GPU Desktop: ${error instanceof Error ? error.message : String(error)}`;
        this.node.replaceChildren(message);
      }
    }
  }

  /** The viewer's configuration, with JupyterLab's token for the viewer's requests and its websocket. */
  private async fetchConfig(): Promise<ViewerConfig> {
    const url = URLExt.join(this.settings.baseUrl, 'vnc/api/config');
    const response = await ServerConnection.makeRequest(url, { cache: 'no-store' }, this.settings);
    if (!response.ok) {
      throw new Error(`GET ${url}: HTTP ${response.status}`);
    }
    const raw: unknown = await response.json();
    const fields = raw !== null && typeof raw === 'object' ? raw : {};
    // No "JupyterLab" link in the toolbar: the viewer is in JupyterLab.
    return { ...parseConfig({ ...fields, token: this.settings.token, lab_url: '' }), defaults: this.defaults() };
  }
}
