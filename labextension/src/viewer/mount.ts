/**
 * The desktop viewer as a component: mountViewer() builds the viewer inside a root element and wires
 * noVNC's RFB to its toolbar; dispose() undoes all of it. The standalone page mounts it on its body
 * (main.ts), the JupyterLab tab on its panel's node, in JupyterLab's own page. The pure parts live in
 * the sibling modules; this file only finds elements, listens to them and calls those parts.
 */

import RFB from '@novnc/novnc';

import { ClipboardSync } from './clipboard';
import { websocketUrl, type ViewerConfig } from './config';
import { ConnectionController, describeConnection, type ConnectionView } from './connection';
import { addKeyButtons, sendCombo } from './keys';
import { addViewerMarkup } from './markup';
import { cookieValue, fetchStatus, postActivity, postDesktop, type Credentials } from './server';
import { mountSharePanel } from './share';
import {
  clampLevel,
  loadSettings,
  rfbOptions,
  saveSettings,
  type ClipboardDirection,
  type ResizeMode,
  type ViewerSettings,
} from './settings';
import {
  formatTimeLeft,
  pausedLabel,
  secondsLeftAt,
  shareLabel,
  summarizeStatus,
  timeLeftUrgency,
  type DesktopStatus,
} from './status';

declare global {
  interface Window {
    /** The current noVNC RFB object, for automated browser tests and debugging. */
    jvncRfb?: RFB;
  }
}

/** The class mountViewer gives its root; viewer.css styles nothing outside it. */
const ROOT_CLASS = 'jvnc-viewer';

export interface ViewerHandle {
  /** Disconnects, removes the viewer's elements, listeners and timers, and gives the root back as it was. */
  dispose(): void;
}

const STATUS_POLL_MS = 30_000;
const RESTART_CONFIRM_MS = 4_000;

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

export function mountViewer(root: HTMLElement, config: ViewerConfig): ViewerHandle {
  const addedClass = !root.classList.contains(ROOT_CLASS);
  root.classList.add(ROOT_CLASS);
  const markup = addViewerMarkup(root);

  // Aborted by dispose(): removes the listeners on window and document, and tells callbacks that are
  // still pending (timers, fetches) that the viewer is gone.
  const teardown = new AbortController();
  const { signal } = teardown;
  const timeouts = new Set<ReturnType<typeof setTimeout>>();
  const later = (fn: () => void, ms: number): ReturnType<typeof setTimeout> | undefined => {
    if (signal.aborted) {
      return undefined;
    }
    const timer = setTimeout(() => {
      timeouts.delete(timer);
      fn();
    }, ms);
    timeouts.add(timer);
    return timer;
  };
  const cancel = (timer: ReturnType<typeof setTimeout> | undefined): void => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timeouts.delete(timer);
    }
  };
  const intervals: ReturnType<typeof setInterval>[] = [];

  const byId = <T extends HTMLElement>(id: string): T => {
    const el = root.querySelector<T>(`#${id}`);
    if (!el) {
      throw new Error(`jupyter-vnc: the viewer has no #${id}; markup.ts and mount.ts do not match`);
    }
    return el;
  };

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
    share: byId<HTMLElement>('jvnc-share'),
    idle: byId<HTMLElement>('jvnc-idle'),
    idleText: byId<HTMLElement>('jvnc-idle-text'),
    keep: byId<HTMLButtonElement>('jvnc-keep'),
    clipboardToggle: byId<HTMLButtonElement>('jvnc-clipboard-toggle'),
    clipboardPanel: byId<HTMLElement>('jvnc-clipboard-panel'),
    settingsToggle: byId<HTMLButtonElement>('jvnc-settings-toggle'),
    settingsPanel: byId<HTMLElement>('jvnc-settings-panel'),
    native: byId<HTMLElement>('jvnc-native'),
    nativeSsh: byId<HTMLInputElement>('jvnc-native-ssh'),
    nativeViewer: byId<HTMLInputElement>('jvnc-native-viewer'),
    keysToggle: byId<HTMLButtonElement>('jvnc-keys-toggle'),
    keysPanel: byId<HTMLElement>('jvnc-keys-panel'),
    keysList: byId<HTMLElement>('jvnc-keys-list'),
    shareToggle: byId<HTMLButtonElement>('jvnc-share-toggle'),
    sharePanel: byId<HTMLElement>('jvnc-share-panel'),
    quality: byId<HTMLInputElement>('jvnc-quality'),
    qualityValue: byId<HTMLOutputElement>('jvnc-quality-value'),
    compression: byId<HTMLInputElement>('jvnc-compression'),
    compressionValue: byId<HTMLOutputElement>('jvnc-compression-value'),
    resize: byId<HTMLSelectElement>('jvnc-resize'),
    clipboardDirection: byId<HTMLSelectElement>('jvnc-clipboard-direction'),
    clipboardDirectionField: byId<HTMLElement>('jvnc-clipboard-direction-field'),
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
  const settings: ViewerSettings = loadSettings(store, config.defaults);
  let rfb: RFB | null = null;
  // Whether the screen is this user's to resize: the owner's (and an admin's), not a share recipient's.
  let role = 'owner';
  const ownScreen = (): boolean => role === 'owner' || role === 'admin';

  const applySettings = (): void => {
    ui.quality.value = ui.qualityValue.value = String(settings.quality);
    ui.compression.value = ui.compressionValue.value = String(settings.compression);
    ui.resize.value = settings.resize;
    ui.clipboardDirection.value = settings.clipboard;
    if (rfb) {
      Object.assign(rfb, rfbOptions(settings, ownScreen()));
    }
  };
  const changeSettings = (change: Partial<ViewerSettings>): void => {
    Object.assign(settings, change);
    saveSettings(store, change);
    applySettings();
  };
  ui.quality.addEventListener('input', () => changeSettings({ quality: clampLevel(ui.quality.value, settings.quality) }));
  ui.compression.addEventListener('input', () =>
    changeSettings({ compression: clampLevel(ui.compression.value, settings.compression) }),
  );
  ui.resize.addEventListener('change', () => changeSettings({ resize: ui.resize.value as ResizeMode }));
  ui.clipboardDirection.addEventListener('change', () =>
    changeSettings({ clipboard: ui.clipboardDirection.value as ClipboardDirection }),
  );
  applySettings();

  // ---- toolbar: collapse, panels, full screen -------------------------------------------------------
  const setCollapsed = (collapsed: boolean): void => {
    ui.toolbar.hidden = collapsed;
    ui.expand.hidden = !collapsed;
    if (collapsed) {
      closePanels();
    }
    root.classList.toggle('jvnc-collapsed', collapsed);
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
    [ui.keysToggle, ui.keysPanel],
    [ui.settingsToggle, ui.settingsPanel],
    [ui.shareToggle, ui.sharePanel],
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
  document.addEventListener(
    'keydown',
    (event) => {
      if (event.key === 'Escape' && panels.some(([, p]) => !p.hidden && p.contains(document.activeElement))) {
        const button = panels.find(([, p]) => !p.hidden)?.[0];
        closePanels();
        button?.focus();
      }
    },
    { signal },
  );
  // Going back to the desktop closes the panels.
  ui.screen.addEventListener('pointerdown', closePanels, true);
  setCollapsed(settings.toolbarCollapsed);

  if (document.fullscreenEnabled) {
    ui.fullscreen.hidden = false;
    // Only the viewer goes full screen: in JupyterLab the rest of Lab's page stays behind.
    const label = (): void => {
      ui.fullscreen.textContent = document.fullscreenElement === root ? 'Exit full screen' : 'Full screen';
    };
    ui.fullscreen.addEventListener('click', () => {
      const request = document.fullscreenElement === root ? document.exitFullscreen() : root.requestFullscreen();
      request.catch(() => undefined);
    });
    document.addEventListener('fullscreenchange', label, { signal });
  }

  // ---- clipboard ------------------------------------------------------------------------------------
  let clipboard: ClipboardSync | null = null;
  if (!config.clipboard) {
    ui.clipboardDirectionField.remove(); // the site allows no clipboard: nothing to choose
  }
  if (config.clipboard) {
    ui.clipboardToggle.hidden = false;
    clipboard = new ClipboardSync(
      {
        textarea: byId<HTMLTextAreaElement>('jvnc-clipboard-text'),
        pasteButton: byId<HTMLButtonElement>('jvnc-clipboard-paste'),
        clearButton: byId<HTMLButtonElement>('jvnc-clipboard-clear'),
      },
      navigator.clipboard,
      () => settings.clipboard,
    );
    // Coming back to the desktop from another window: bring along what was copied there.
    window.addEventListener('focus', () => void clipboard?.pullFromBrowser(false), { signal });
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
    if (signal.aborted) {
      return; // a fetch that answered after dispose(): the root is no longer ours
    }
    if (!status) {
      ui.info.hidden = true;
      root.dataset.desktopState = '';
      return;
    }
    const summary = summarizeStatus(status);
    ui.info.hidden = false;
    ui.infoText.textContent = summary.parts.filter((p) => p !== 'software OpenGL').join(' · ');
    ui.info.title = summary.detail;
    ui.glNotice.hidden = !summary.softwareGl;
    ui.glNotice.title = status.glNotice || 'No GPU for this desktop: OpenGL runs on the CPU, so 3D is slower';
    root.dataset.desktopState = status.state;
    // Who may do what is the server's to enforce; the viewer only stops offering what would be refused.
    const share = shareLabel(status);
    ui.share.hidden = !share;
    ui.share.textContent = share;
    root.dataset.role = status.role;
    role = status.role;
    ui.restart.hidden = !config.desktopUrl || status.role === 'view' || status.role === 'control';
    ui.shareToggle.hidden = !sharing || !ownScreen();
    ui.keysToggle.hidden = status.role === 'view';
    ui.native.hidden = !status.nativeClient;
    if (status.nativeClient) {
      ui.nativeSsh.value = status.nativeClient.ssh;
      ui.nativeViewer.value = status.nativeClient.viewer;
    }
    if (!ui.sharePanel.hidden) {
      void sharing?.refresh(); // who is watching may have changed
    }
    if (rfb) {
      rfb.viewOnly = status.role === 'view';
      Object.assign(rfb, rfbOptions(settings, ownScreen()));
    }
    renderTimeLeft();
    renderIdle();
  };
  const renderIdle = (): void => {
    const paused = view?.halted === 'idle';
    ui.idle.hidden = !paused;
    root.dataset.paused = String(paused);
    if (paused && status) {
      ui.idleText.textContent = pausedLabel(status, Math.floor((Date.now() - statusAt) / 1000));
      ui.keep.textContent = status.shutdownIn === null ? 'Resume' : 'Keep it';
    }
  };
  // Jupyter wants the XSRF token on every cookie-authenticated fetch (JupyterHub on GETs too); the API
  // token authenticates where JupyterHub does not take cookies.
  const credentials = (): Credentials => ({
    xsrfToken: cookieValue(document.cookie, '_xsrf') ?? (config.xsrfToken || null),
    token: config.token,
  });
  // Copy buttons beside read-only commands (the native client's).
  for (const button of root.querySelectorAll<HTMLButtonElement>('button[data-copy]')) {
    button.addEventListener(
      'click',
      () => {
        const field = byId<HTMLInputElement>(button.dataset.copy ?? '');
        field.select();
        void navigator.clipboard?.writeText(field.value).catch(() => undefined);
      },
      { signal },
    );
  }

  // Keys the browser would keep: sent, then the keyboard goes back to the desktop.
  addKeyButtons(
    ui.keysList,
    (combo) => {
      if (rfb && !rfb.viewOnly) {
        sendCombo(rfb, combo);
        closePanels();
        rfb.focus({ preventScroll: true });
      }
    },
    signal,
  );

  // Sharing: the owner's (and an admin's) panel, behind a hub only (the hub keeps the shares).
  const sharing = config.sharesUrl
    ? mountSharePanel({
        sharesUrl: config.sharesUrl,
        link: new URL(config.viewerUrl || '.', window.location.href).href,
        credentials,
        byId,
        signal,
      })
    : null;
  ui.shareToggle.addEventListener(
    'click',
    () => {
      if (!ui.sharePanel.hidden) {
        void sharing?.refresh();
      }
    },
    { signal },
  );
  const refreshStatus = async (): Promise<DesktopStatus | null> => {
    if (!config.statusUrl) {
      return null;
    }
    const fresh = await fetchStatus(config.statusUrl, credentials());
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
    if (!view || signal.aborted) {
      return;
    }
    ui.stateText.textContent = notice || describeConnection(view, Date.now());
    ui.state.dataset.state = view.state;
    root.dataset.vncState = view.state;
    root.dataset.vncReason = view.reason;
    ui.connectToggle.textContent = view.halted === 'idle' ? 'Resume' : view.halted ? 'Connect' : 'Disconnect';
    renderIdle();
    if (!restartArmed) {
      ui.restart.textContent = view.halted === 'desktop' ? 'Start desktop' : 'Restart desktop';
    }
  };

  const controller = new ConnectionController({
    createRfb: () => {
      const url = websocketUrl(config.websocketPath, window.location.href, config.token);
      const next = new RFB(ui.screen, url, { wsProtocols: ['binary'], shared: true });
      next.background = 'transparent';
      Object.assign(next, rfbOptions(settings, ownScreen()));
      return next;
    },
    onRfb: (next) => {
      rfb = next as RFB;
      window.jvncRfb = rfb;
      clipboard?.attach(rfb);
      const connected = rfb;
      connected.addEventListener('connect', () => {
        // Keyboard to the desktop, unless the user is busy elsewhere (a panel, or in JupyterLab another
        // widget): a reconnect must not steal the focus. The root itself has it when the JupyterLab tab
        // was activated before the desktop was there.
        const active = document.activeElement;
        if (!active || active === document.body || active === root) {
          connected.focus({ preventScroll: true });
        }
        refreshQuietly();
        // noVNC resizes the remote screen to the viewer just after connecting: show the new size.
        later(refreshQuietly, 1500);
      });
    },
    onView: (next) => {
      view = next;
      renderConnection();
    },
    fetchStatus: config.statusUrl ? refreshStatus : undefined,
    initialStatus: config.initialStatus,
    startDesktop: config.desktopUrl ? () => postDesktop(config.desktopUrl, credentials()) : undefined,
    resume: config.activityUrl ? () => postActivity(config.activityUrl, credentials()) : undefined,
  });
  ui.keep.addEventListener('click', () => {
    notice = '';
    controller.connect();
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
    cancel(disarmTimer);
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
      disarmTimer = later(disarm, RESTART_CONFIRM_MS);
      return;
    }
    disarm();
    ui.restart.disabled = true;
    notice = desktopUp ? 'Restarting the desktop…' : 'Starting the desktop…';
    renderConnection();
    try {
      await postDesktop(config.desktopUrl, credentials(), { restart: desktopUp });
      notice = '';
      // Closed while the server restarted the desktop: do not connect a viewer that is gone.
      if (!signal.aborted) {
        controller.desktopRestarted();
      }
    } catch (err) {
      notice = `Could not ${desktopUp ? 'restart' : 'start'} the desktop: ${err instanceof Error ? err.message : err}`;
      renderConnection();
      later(() => {
        notice = '';
        renderConnection();
      }, 8_000);
    } finally {
      ui.restart.disabled = false;
    }
  });

  // ---- timers ---------------------------------------------------------------------------------------
  // One tick renders the reconnect countdown and the job's time left.
  intervals.push(
    setInterval(() => {
      if (view && view.retryAt !== null) {
        renderConnection();
      }
      renderTimeLeft();
      renderIdle();
    }, 1000),
  );
  if (config.statusUrl) {
    intervals.push(
      setInterval(() => {
        // Not while paused or disconnected: every request through the hub's proxy counts as activity,
        // and a forgotten viewer must let the desktop look idle.
        if (!document.hidden && !view?.halted) {
          refreshQuietly();
        }
      }, STATUS_POLL_MS),
    );
  }
  // A remote resize follows the viewer's size (the window, or in JupyterLab the tab, which can change
  // without the window): show the desktop's new size once it settles.
  let resizeTimer: ReturnType<typeof setTimeout> | undefined;
  const resizeObserver = new ResizeObserver(() => {
    cancel(resizeTimer);
    resizeTimer = later(refreshQuietly, 2_000);
  });
  resizeObserver.observe(ui.screen);
  document.addEventListener(
    'visibilitychange',
    () => {
      if (!document.hidden && !view?.halted) {
        refreshQuietly();
      }
    },
    { signal },
  );

  controller.start();

  return {
    dispose(): void {
      if (signal.aborted) {
        return;
      }
      teardown.abort();
      for (const timer of timeouts) {
        clearTimeout(timer);
      }
      timeouts.clear();
      for (const interval of intervals) {
        clearInterval(interval);
      }
      resizeObserver.disconnect();
      controller.disconnect();
      if (window.jvncRfb === rfb) {
        delete window.jvncRfb;
      }
      for (const node of markup) {
        node.remove();
      }
      if (addedClass) {
        root.classList.remove(ROOT_CLASS);
      }
      root.classList.remove('jvnc-collapsed');
      delete root.dataset.vncState;
      delete root.dataset.vncReason;
      delete root.dataset.desktopState;
    },
  };
}
