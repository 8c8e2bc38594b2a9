import { LabIcon } from '@jupyterlab/ui-components';

/**
 * A monitor showing a desktop (a panel bar and a window) with a GPU chip. The jp-icon* classes let
 * the theme recolour it: grey frame, brand-blue screen, orange (warn colour) chip.
 */
const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" width="24" height="24" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M2.5 3h19A1.5 1.5 0 0 1 23 4.5v11a1.5 1.5 0 0 1-1.5 1.5h-19A1.5 1.5 0 0 1 1 15.5v-11A1.5 1.5 0 0 1 2.5 3zm.3 1.8v10.4h18.4V4.8z"/>
    <path d="M9.6 17h4.8l.6 2.5h2.2a.75.75 0 0 1 0 1.5H6.8a.75.75 0 0 1 0-1.5H9z"/>
  </g>
  <rect class="jp-icon-brand1" fill="#1976d2" x="2.8" y="4.8" width="18.4" height="10.4"/>
  <rect class="jp-icon-brand0" fill="#0d47a1" x="2.8" y="4.8" width="18.4" height="1.6"/>
  <rect fill="#ffffff" opacity="0.92" x="4.4" y="7.8" width="7.6" height="5.6" rx="0.4"/>
  <g class="jp-icon-warn0" fill="#f57c00">
    <rect x="14.4" y="8.6" width="4.4" height="4.4" rx="0.4"/>
    <path d="M15 7.6h.7v1h-.7zm1.3 0h.7v1h-.7zm1.3 0h.7v1h-.7zM15 13h.7v1h-.7zm1.3 0h.7v1h-.7zm1.3 0h.7v1h-.7z"/>
  </g>
  <rect fill="#1976d2" class="jp-icon-brand1" x="15.6" y="9.8" width="2" height="2"/>
</svg>`;

export const desktopIcon = new LabIcon({ name: 'jupyter-vnc:desktop', svgstr });
