import { Widget } from '@lumino/widgets';

import { desktopIcon } from './icon';

/**
 * The desktop viewer page (<base_url>vnc/) in a JupyterLab main-area tab, as an iframe. The server
 * allows same-origin framing of that page only (frame-ancestors 'self').
 */
export class DesktopPanel extends Widget {
  readonly iframe: HTMLIFrameElement;

  constructor(url: string) {
    super();
    this.id = 'jupyter-vnc-desktop';
    // jp-IFrame: JupyterLab covers iframes while a panel or splitter is dragged, so they do not swallow
    // the mouse.
    this.addClass('jp-IFrame');
    this.addClass('jvnc-DesktopPanel');
    this.title.label = 'GPU Desktop';
    this.title.caption = `GPU Desktop (${url})`;
    this.title.icon = desktopIcon;
    this.title.closable = true;
    this.iframe = document.createElement('iframe');
    this.iframe.src = url;
    this.iframe.title = 'GPU Desktop';
    // No sandbox: it is our own page on our own origin, and it needs scripts, its cookie and
    // websockets. The clipboard permissions let its clipboard panel reach the browser's clipboard.
    this.iframe.allow = 'clipboard-read; clipboard-write; fullscreen';
    this.iframe.referrerPolicy = 'same-origin';
    this.node.appendChild(this.iframe);
  }

  /** Load the page again (after a restart it would reconnect by itself; this is for a stuck page). */
  reload(): void {
    this.iframe.src = this.iframe.src;
  }

  protected onActivateRequest(): void {
    // Keys typed after clicking the tab go to the desktop, not to JupyterLab.
    this.iframe.focus();
  }
}
