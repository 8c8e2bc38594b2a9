/**
 * The JupyterLab side of jupyter-vnc: a "GPU Desktop" launcher tile and commands (palette, File menu)
 * that open the desktop in a new browser tab (the viewer page <base_url>vnc/) or in a JupyterLab tab (the
 * viewer drawn in Lab's own page), "Restart GPU Desktop", a status bar item, and notifications 10 and 2
 * minutes before the Slurm job's time limit. All of it only where the server offers a desktop (an Xvnc is
 * installed, or the server is a desktop job): the package is often installed in an environment that every
 * Jupyter server of a site shares.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, Notification, showDialog, Dialog, WidgetTracker } from '@jupyterlab/apputils';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { ILauncher } from '@jupyterlab/launcher';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { LabIcon, refreshIcon } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';

import { fetchAppIcon, fetchApps, startApp } from './apps';
import { desktopIcon } from './icon';
import {
  aheadSize,
  appCaption,
  ASSETS_KEY,
  desktopOffered,
  desktopUrl,
  type LabApp,
  LabStatus,
  PAGE_CONFIG_KEY,
  parseLabStatus,
  viewerAssets,
  WarningLedger,
} from './model';
import { DesktopPanel } from './panel';
import { DesktopStatusItem } from './statusitem';
import { loadSettings, parseDefaults, type ViewerSettings } from '../viewer/settings';

export namespace CommandIDs {
  export const open = 'jupyter-vnc:open';
  export const openApp = 'jupyter-vnc:open-app';
  export const openPanel = 'jupyter-vnc:open-panel';
  export const restart = 'jupyter-vnc:restart';
}

const CATEGORY = 'Desktop';

function localStore(): Storage | null {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}
const POLL_MS = 15_000;

/** GET vnc/api/status; a readable reason on failure. */
async function fetchStatus(settings: ServerConnection.ISettings): Promise<LabStatus> {
  const url = URLExt.join(settings.baseUrl, 'vnc', 'api', 'status');
  const response = await ServerConnection.makeRequest(url, { cache: 'no-store' }, settings);
  if (!response.ok) {
    throw new Error(`HTTP ${response.status}`);
  }
  const status = parseLabStatus(await response.json());
  if (!status) {
    throw new Error('not a desktop status');
  }
  return status;
}

/** POST vnc/api/desktop?restart=1 (ServerConnection adds the token / XSRF header). Null: JSON for Notification.promise. */
async function restartDesktop(settings: ServerConnection.ISettings): Promise<null> {
  const url = URLExt.join(settings.baseUrl, 'vnc', 'api', 'desktop') + '?restart=1';
  const response = await ServerConnection.makeRequest(url, { method: 'POST', body: '{}' }, settings);
  const body: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && typeof body === 'object' ? (body as Record<string, unknown>).message : null;
    throw new Error(typeof message === 'string' && message ? message : `HTTP ${response.status}`);
  }
  return null;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-vnc:plugin',
  description: 'GPU Desktop: launcher tile, JupyterLab tab, status bar item and walltime warnings.',
  autoStart: true,
  optional: [ILauncher, ICommandPalette, IStatusBar, ILayoutRestorer, ISettingRegistry, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    launcher: ILauncher | null,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null,
    restorer: ILayoutRestorer | null,
    registry: ISettingRegistry | null,
    translator: ITranslator | null,
  ) => {
    const trans = (translator ?? nullTranslator).load('jupyter_vnc');
    if (!desktopOffered(PageConfig.getOption(PAGE_CONFIG_KEY))) {
      // No Xvnc on this server, or jupyter-vnc is off in it: no tile or command that could only fail, and
      // no status to poll.
      return;
    }
    const { commands, shell } = app;
    const settings = app.serviceManager.serverSettings;
    // The server's own base URL: /user/<name>/ or /user/<name>/<server>/ behind JupyterHub.
    const url = desktopUrl(PageConfig.getBaseUrl());
    const tracker = new WidgetTracker<DesktopPanel>({ namespace: 'jupyter-vnc' });
    // The user's defaults for the viewer (Settings → Settings Editor → GPU Desktop), kept current.
    let viewerDefaults: Partial<ViewerSettings> = {};
    if (registry) {
      void registry
          .load(plugin.id)
          .then(loaded => {
            const read = (): void => {
              viewerDefaults = parseDefaults(loaded.composite);
            };
            read();
            loaded.changed.connect(read);
          })
          .catch(() => undefined);
    }

    // The tile's new tab will be this window's size: the desktop is given that size now, while nobody
    // looks at it, so the first picture after the click is the final one (no resize, no new layout).
    // (Not waiting for the settings: the registry may answer late, and a desktop sized to the window is
    // harmless for a viewer that scales.)
    void app.restored.then(() => {
      const size = aheadSize(window.innerWidth, window.innerHeight, loadSettings(localStore(), viewerDefaults));
      if (size) {
        const fit = URLExt.join(settings.baseUrl, 'vnc', 'api', 'desktop') + `?size=${size}`;
        void ServerConnection.makeRequest(fit, { method: 'POST', body: '{}' }, settings).catch(() => undefined);
      }
    });

    commands.addCommand(CommandIDs.open, {
      label: args => (args.isLauncher ? trans.__('GPU Desktop') : trans.__('Open GPU Desktop in a Browser Tab')),
      caption: trans.__('Open the Linux desktop of this server in a new browser tab'),
      icon: args => (args.isPalette ? undefined : desktopIcon),
      execute: () => {
        window.open(url, '_blank', 'noopener');
      },
    });

    commands.addCommand(CommandIDs.openPanel, {
      label: trans.__('Open GPU Desktop in a JupyterLab Tab'),
      caption: trans.__('Show the Linux desktop of this server in a JupyterLab tab'),
      icon: args => (args.isPalette ? undefined : desktopIcon),
      execute: () => {
        let panel = tracker.currentWidget;
        if (!panel || panel.isDisposed) {
          panel = new DesktopPanel(settings, () => viewerDefaults);
          void tracker.add(panel);
          shell.add(panel, 'main');
        }
        shell.activateById(panel.id);
        return panel;
      },
    });

    commands.addCommand(CommandIDs.restart, {
      label: trans.__('Restart GPU Desktop'),
      caption: trans.__('End every program on the desktop and start a fresh one'),
      icon: args => (args.isPalette ? undefined : refreshIcon),
      execute: async () => {
        const answer = await showDialog({
          title: trans.__('Restart the GPU Desktop?'),
          body: trans.__(
            'Every program running on the desktop ends, and unsaved work in them is lost. The Slurm job and JupyterLab keep running.',
          ),
          buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: trans.__('Restart') })],
        });
        if (!answer.button.accept) {
          return;
        }
        const restarted = restartDesktop(settings);
        Notification.promise(restarted, {
          pending: { message: trans.__('Restarting the GPU Desktop…'), options: { autoClose: false } },
          success: { message: () => trans.__('The GPU Desktop was restarted.'), options: { autoClose: 5000 } },
          error: {
            message: (reason: unknown) =>
              trans.__('Restarting the GPU Desktop failed: %1', String((reason as Error)?.message ?? reason)),
          },
        });
        try {
          await restarted;
        } finally {
          void poll.refresh();
        }
      },
    });

    // The admin's apps: a tile each, after the desktop's own.
    const appIcons = new Map<string, LabIcon>();
    commands.addCommand(CommandIDs.openApp, {
      label: args => String(args.title ?? args.name ?? 'App'),
      caption: args => appCaption(args as unknown as LabApp),
      icon: args => appIcons.get(String(args.name)) ?? desktopIcon,
      execute: args => {
        const name = String(args.name);
        const title = String(args.title ?? name);
        // Opened at once, in the click: a window opened after an await is a pop-up to the browser.
        window.open(url, '_blank', 'noopener');
        startApp(settings, name).catch((error: unknown) => {
          Notification.error(trans.__('%1 could not be started: %2', title, String((error as Error)?.message ?? error)), {
            autoClose: false,
          });
        });
      },
    });

    // The viewer's script and style into the browser's cache once JupyterLab is up (idle, low priority):
    // the tile's new tab, and this page's desktop tab, then find them there.
    void app.restored.then(() => {
      for (const href of viewerAssets(PageConfig.getOption(ASSETS_KEY))) {
        const link = document.createElement('link');
        link.rel = 'prefetch';
        link.href = href;
        document.head.appendChild(link);
      }
    });

    if (launcher) {
      launcher.add({ command: CommandIDs.open, category: CATEGORY, rank: 0, args: { isLauncher: true } });
      void fetchApps(settings).then(async offered => {
        for (const [index, offeredApp] of offered.entries()) {
          const icon = await fetchAppIcon(settings, offeredApp).catch(() => null);
          if (icon) {
            appIcons.set(offeredApp.name, icon);
          }
          launcher.add({
            command: CommandIDs.openApp,
            category: CATEGORY,
            rank: index + 1,
            args: { ...offeredApp },
          });
        }
      });
    }
    if (palette) {
      for (const command of [CommandIDs.open, CommandIDs.openPanel, CommandIDs.restart]) {
        palette.addItem({ command, category: trans.__('GPU Desktop'), args: { isPalette: true } });
      }
    }
    if (restorer) {
      void restorer.restore(tracker, { command: CommandIDs.openPanel, name: () => 'desktop' });
    }

    // Status bar item and walltime warnings, from one poll of vnc/api/status.
    const item = statusBar ? new DesktopStatusItem(() => void commands.execute(CommandIDs.open)) : null;
    if (statusBar && item) {
      statusBar.registerStatusItem('jupyter-vnc:status', { item, align: 'left', rank: 50 });
    }
    const ledger = new WarningLedger();
    const poll = new Poll({
      name: 'jupyter-vnc:status',
      frequency: { interval: POLL_MS, backoff: true, max: 5 * 60_000 },
      // A hidden tab asks nothing (its next tick comes when it is shown again): a forgotten browser tab
      // must cost the server nothing. The status reply no longer counts as activity either.
      standby: 'when-hidden',
      factory: async () => {
        let status: LabStatus;
        try {
          status = await fetchStatus(settings);
        } catch (error) {
          item?.setStatus(null, String((error as Error)?.message ?? error));
          throw error; // backs off while the server does not answer
        }
        item?.setStatus(status);
        const warning = ledger.check(status);
        if (warning) {
          const notify = warning.threshold <= 120 ? Notification.error : Notification.warning;
          notify(warning.message, { autoClose: false });
        }
      },
    });
    void poll.start();
  },
};

export default plugin;
