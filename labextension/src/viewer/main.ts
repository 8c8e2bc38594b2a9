/**
 * Entry of the viewer bundle (jupyter_vnc/static/viewer.js, an ES module). On the standalone page
 * (templates/viewer.html, the one with the #jvnc-config element) it mounts the viewer on the page's body;
 * the JupyterLab tab imports this module and mounts the viewer on its own node.
 */

import './viewer.css';
import { CONFIG_ELEMENT_ID, readConfig } from './config';
import { mountViewer } from './mount';

export { mountViewer };
export type { ViewerConfig } from './config';
export type { ViewerHandle } from './mount';

function mountPage(): void {
  const config = readConfig(document);
  document.title = config.title;
  // The page follows the system's light or dark preference (JupyterLab's tab follows Lab's theme).
  const light = window.matchMedia?.('(prefers-color-scheme: light)');
  const theme = (): void => {
    document.body.dataset.theme = light?.matches ? 'light' : 'dark';
  };
  theme();
  light?.addEventListener('change', theme);
  mountViewer(document.body, config);
}

if (document.getElementById(CONFIG_ELEMENT_ID)) {
  // A module script may run after DOMContentLoaded is over.
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', mountPage, { once: true });
  } else {
    mountPage();
  }
}
