/**
 * The desktop viewer page: wires noVNC's RFB to the toolbar. The pure parts live in the sibling modules;
 * this file only finds elements, listens to them and calls those parts.
 */

import RFB from '@novnc/novnc';

import './viewer.css';
import { ClipboardSync } from './clipboard';
import { readConfig, websocketUrl, type ViewerConfig } from './config';
import { ConnectionController, describeConnection, type ConnectionView } from './connection';
import { cookieValue, fetchStatus, postDesktop } from './server';
import { clampLevel, loadSettings, rfbOptions, saveSettings, type ResizeMode, type ViewerSettings } from './settings';
import { formatTimeLeft, secondsLeftAt, summarizeStatus, timeLeftUrgency, type DesktopStatus } from './status';

declare global {
  interface Window {
    /** The current noVNC RFB object, for automated browser tests and debugging. */
    jvncRfb?: RFB;
  }
}

const STATUS_POLL_MS = 30_000;
const RESTART_CONFIRM_MS = 4_000;

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) {
    throw new Error(`jupyter-vnc: the page has no #${id}; templates/viewer.html and viewer.js do not match`);
  }
  return el as T;
}

function storage(): Storage | null {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

function showLink(link: HTMLAnchorElement, href: string): void {
  link.hidden = !href;
  if (href) {
    link.href = href;
  }
}

function main(): void {
  const config: ViewerConfig = readConfig(document);
  document.title = config.title;

  const ui = {
    toolbar: byId<HTMLElement>('jvnc-toolbar'),
    collapse: byId<HTMLButtonElement>('jvnc-collapse'),
    expand: byId<HTMLButtonElement>('jvnc-expand'),
    state: byId<HTMLElement>('jvnc-state'),
    stateText: byId<HTMLElement>('jvnc-state-text'),
    info: byId<HTMLElement>('jvnc-info'),
    infoText: byId<HTMLElement>('jvnc-info-text'),
    glNotice: byId<HTMLElement>('jvnc-gl-notice'),
    timeLeft: byId<HTMLElement>('jvnc-time-left'),
    clipboardToggle: byId<HTMLButtonElement>('jvnc-clipboard-toggle'),
    clipboardPanel: byId<HTMLElement>('jvnc-clipboard-panel'),
    settingsToggle: byId<HTMLButtonElement>('jvnc-settings-toggle'),
    settingsPanel: byId<HTMLElement>('jvnc-settings-panel'),
    quality: byId<HTMLInputElement>('jvnc-quality'),
    qualityValue: byId<HTMLOutputElement>('jvnc-quality-value'),
    compression: byId<HTMLInputElement>('jvnc-compression'),
    compressionValue: byId<HTMLOutputElement>('jvnc-compression-value'),
    resize: byId<HTMLSelectElement>('jvnc-resize'),
    fullscreen: byId<HTMLButtonElement>('jvnc-fullscreen'),
    connectToggle: byId<HTMLButtonElement>('jvnc-connect-toggle'),
    restart: byId<HTMLButtonElement>('jvnc-restart'),
    labLink: byId<HTMLAnchorElement>('jvnc-lab-link'),
    hubLink: byId<HTMLAnchorElement>('jvnc-hub-link'),
    screen: byId<HTMLElement>('jvnc-screen'),
  };

  showLink(ui.labLink, config.labUrl);
  showLink(ui.hubLink, config.hubUrl);
  ui.restart.hidden = !config.desktopUrl;

  // ---- settings -------------------------------------------------------------------------------------
  const store = storage();
  const settings: ViewerSettings = loadSettings(store);
  let rfb: RFB | null = null;

  const applySettings = (): void => {
    ui.quality.value = ui.qualityValue.value = String(settings.quality);
    ui.compression.value = ui.compressionValue.value = String(settings.compression);
    ui.resize.value = settings.resize;
    if (rfb) {
      Object.assign(rfb, rfbOptions(settings));
    }
  };
  const changeSettings = (change: Partial<ViewerSettings>): void => {
    Object.assign(settings, change);
    saveSettings(store, settings);
    applySettings();
  };
  ui.quality.addEventListener('input', () => changeSettings({ quality: clampLevel(ui.quality.value, settings.quality) }));
  ui.compression.addEventListener('input', () =>
    changeSettings({ compression: clampLevel(ui.compression.value, settings.compression) }),
  );
  ui.resize.addEventListener('change', () => changeSettings({ resize: ui.resize.value as ResizeMode }));
  applySettings();

  // ---- toolbar: collapse, panels, full screen -------------------------------------------------------
  const setCollapsed = (collapsed: boolean): void => {
    ui.toolbar.hidden = collapsed;
    ui.expand.hidden = !collapsed;
    if (collapsed) {
      closePanels();
    }
    document.body.classList.toggle('jvnc-collapsed', collapsed);
  };
  ui.collapse.addEventListener('click', () => {
    changeSettings({ toolbarCollapsed: true });
    setCollapsed(true);
    ui.expand.focus();
  });
  ui.expand.addEventListener('click', () => {
    changeSettings({ toolbarCollapsed: false });
    setCollapsed(false);
    ui.collapse.focus();
  });

  const panels: [HTMLButtonElement, HTMLElement][] = [
    [ui.clipboardToggle, ui.clipboardPanel],
    [ui.settingsToggle, ui.settingsPanel],
  ];
  const closePanels = (): void => {
    for (const [button, panel] of panels) {
      panel.hidden = true;
      button.setAttribute('aria-expanded', 'false');
    }
  };
  for (const [button, panel] of panels) {
    button.addEventListener('click', () => {
      const open = panel.hidden;
      closePanels();
      panel.hidden = !open;
      button.setAttribute('aria-expanded', String(open));
      if (open) {
        panel.querySelector<HTMLElement>('textarea, input, select')?.focus();
      }
    });
  }
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && panels.some(([, p]) => !p.hidden && p.contains(document.activeElement))) {
      const button = panels.find(([, p]) => !p.hidden)?.[0];
      closePanels();
      button?.focus();
    }
  });
  // Going back to the desktop closes the panels.
  ui.screen.addEventListener('pointerdown', closePanels, true);
  setCollapsed(settings.toolbarCollapsed);

  if (document.fullscreenEnabled) {
    ui.fullscreen.hidden = false;
    const label = (): void => {
      ui.fullscreen.textContent = document.fullscreenElement ? 'Exit full screen' : 'Full screen';
    };
    ui.fullscreen.addEventListener('click', () => {
      const request = document.fullscreenElement
        ? document.exitFullscreen()
        : document.documentElement.requestFullscreen();
      request.catch(() => undefined);
    });
    document.addEventListener('fullscreenchange', label);
  }

  // ---- clipboard ------------------------------------------------------------------------------------
  let clipboard: ClipboardSync | null = null;
  if (config.clipboard) {
    ui.clipboardToggle.hidden = false;
    clipboard = new ClipboardSync({
      textarea: byId<HTMLTextAreaElement>('jvnc-clipboard-text'),
      pasteButton: byId<HTMLButtonElement>('jvnc-clipboard-paste'),
      clearButton: byId<HTMLButtonElement>('jvnc-clipboard-clear'),
    });
    // Coming back to the desktop from another window: bring along what was copied there.
    window.addEventListener('focus', () => void clipboard?.pullFromBrowser(false));
    ui.screen.addEventListener('pointerdown', () => void clipboard?.pullFromBrowser(false), true);
  } else {
    ui.clipboardPanel.remove();
    ui.clipboardToggle.remove();
  }

  // ---- desktop status -------------------------------------------------------------------------------
  let status: DesktopStatus | null = null;
  let statusAt = 0;

  const renderTimeLeft = (): void => {
    if (!status || status.secondsLeft === null) {
      ui.timeLeft.hidden = true;
      return;
    }
    const left = secondsLeftAt(status.secondsLeft, statusAt, Date.now());
    ui.timeLeft.hidden = false;
    ui.timeLeft.textContent = formatTimeLeft(left);
    ui.timeLeft.dataset.urgency = timeLeftUrgency(left);
    ui.timeLeft.title = 'Time left in the Slurm job; the desktop ends with it';
  };
  const renderStatus = (): void => {
    if (!status) {
      ui.info.hidden = true;
      document.body.dataset.desktopState = '';
      return;
    }
    const summary = summarizeStatus(status);
    ui.info.hidden = false;
    ui.infoText.textContent = summary.parts.filter((p) => p !== 'software OpenGL').join(' · ');
    ui.info.title = summary.detail;
    ui.glNotice.hidden = !summary.softwareGl;
    ui.glNotice.title = status.glNotice || 'No GPU for this desktop: OpenGL runs on the CPU, so 3D is slower';
    document.body.dataset.desktopState = status.state;
    renderTimeLeft();
  };
  // Jupyter wants the XSRF token on every cookie-authenticated fetch (JupyterHub on GETs too).
  const xsrfToken = (): string | null => cookieValue(document.cookie, '_xsrf') ?? (config.xsrfToken || null);
  const refreshStatus = async (): Promise<DesktopStatus | null> => {
    if (!config.statusUrl) {
      return null;
    }
    const fresh = await fetchStatus(config.statusUrl, xsrfToken());
    if (fresh) {
      status = fresh;
      statusAt = Date.now();
    }
    renderStatus();
    return fresh;
  };
  const refreshQuietly = (): void => {
    refreshStatus().catch(() => undefined);
  };

  // ---- connection -----------------------------------------------------------------------------------
  let view: ConnectionView | null = null;
  let restartArmed = false;
  let notice = ''; // a transient message (a failed restart) shown instead of the connection line
  const renderConnection = (): void => {
    if (!view) {
      return;
    }
    ui.stateText.textContent = notice || describeConnection(view, Date.now());
    ui.state.dataset.state = view.state;
    document.body.dataset.vncState = view.state;
    document.body.dataset.vncReason = view.reason;
    ui.connectToggle.textContent = view.halted ? 'Connect' : 'Disconnect';
    if (!restartArmed) {
      ui.restart.textContent = view.halted === 'desktop' ? 'Start desktop' : 'Restart desktop';
    }
  };

  const controller = new ConnectionController({
    createRfb: () => {
      const url = websocketUrl(config.websocketPath, window.location.href);
      const next = new RFB(ui.screen, url, { wsProtocols: ['binary'], shared: true });
      next.background = 'transparent';
      Object.assign(next, rfbOptions(settings));
      return next;
    },
    onRfb: (next) => {
      rfb = next as RFB;
      window.jvncRfb = rfb;
      clipboard?.attach(rfb);
      const connected = rfb;
      connected.addEventListener('connect', () => {
        // Keyboard to the desktop, unless the user is busy in a panel (a reconnect must not steal focus).
        if (!document.activeElement || document.activeElement === document.body) {
          connected.focus({ preventScroll: true });
        }
        refreshQuietly();
        // noVNC resizes the remote screen to the window just after connecting: show the new size.
        setTimeout(refreshQuietly, 1500);
      });
    },
    onView: (next) => {
      view = next;
      renderConnection();
    },
    fetchStatus: config.statusUrl ? refreshStatus : undefined,
    startDesktop: config.desktopUrl ? () => postDesktop(config.desktopUrl, xsrfToken()) : undefined,
  });

  ui.connectToggle.addEventListener('click', () => {
    notice = '';
    if (view?.halted) {
      controller.connect();
    } else {
      controller.disconnect();
    }
  });

  // ---- restart --------------------------------------------------------------------------------------
  let disarmTimer: ReturnType<typeof setTimeout> | undefined;
  const disarm = (): void => {
    restartArmed = false;
    clearTimeout(disarmTimer);
    ui.restart.classList.remove('jvnc-armed');
    renderConnection();
  };
  ui.restart.addEventListener('click', async () => {
    // A running desktop loses its open windows: ask for a second click. A stopped one has nothing to lose.
    const desktopUp = view?.halted !== 'desktop';
    if (desktopUp && !restartArmed) {
      restartArmed = true;
      ui.restart.textContent = 'Click again to restart';
      ui.restart.classList.add('jvnc-armed');
      disarmTimer = setTimeout(disarm, RESTART_CONFIRM_MS);
      return;
    }
    disarm();
    ui.restart.disabled = true;
    notice = desktopUp ? 'Restarting the desktop…' : 'Starting the desktop…';
    renderConnection();
    try {
      await postDesktop(config.desktopUrl, xsrfToken(), { restart: desktopUp });
      notice = '';
      controller.desktopRestarted();
    } catch (err) {
      notice = `Could not ${desktopUp ? 'restart' : 'start'} the desktop: ${err instanceof Error ? err.message : err}`;
      renderConnection();
      setTimeout(() => {
        notice = '';
        renderConnection();
      }, 8_000);
    } finally {
      ui.restart.disabled = false;
    }
  });

  // ---- timers ---------------------------------------------------------------------------------------
  // One tick renders the reconnect countdown and the job's time left.
  setInterval(() => {
    if (view && view.retryAt !== null) {
      renderConnection();
    }
    renderTimeLeft();
  }, 1000);
  if (config.statusUrl) {
    setInterval(() => {
      if (!document.hidden) {
        refreshQuietly();
      }
    }, STATUS_POLL_MS);
  }
  // A remote resize changes the desktop's size: show the new one once the window settles.
  let resizeTimer: ReturnType<typeof setTimeout> | undefined;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(refreshQuietly, 2_000);
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) {
      refreshQuietly();
    }
  });

  controller.start();
}

// The bundle has top-level awaits (noVNC's codec probe), so DOMContentLoaded may already be over.
if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', main, { once: true });
} else {
  main();
}
