import { Widget } from '@lumino/widgets';

import { LabStatus, statusText, statusTooltip } from './model';
import { desktopIcon } from './icon';

/** The status bar item: "Desktop: running · NVIDIA A100 · 1920×1080 · 52 min left". */
export class DesktopStatusItem extends Widget {
  private readonly label: HTMLSpanElement;

  constructor(onClick: () => void) {
    super();
    this.addClass('jvnc-StatusItem');
    this.addClass('jp-StatusBar-GroupItem');
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    const icon = desktopIcon.element({ tag: 'span', className: 'jvnc-StatusItem-icon' });
    this.label = document.createElement('span');
    this.label.className = 'jp-StatusBar-TextItem jvnc-StatusItem-text';
    this.node.append(icon, this.label);
    this.node.addEventListener('click', onClick);
    this.node.addEventListener('keydown', e => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        onClick();
      }
    });
    this.setStatus(null, 'not checked yet');
  }

  setStatus(status: LabStatus | null, error = ''): void {
    this.label.textContent = statusText(status);
    this.node.title = statusTooltip(status, error);
    this.node.dataset.desktopState = status?.state ?? 'unavailable';
    const left = status?.secondsLeft ?? null;
    this.node.dataset.urgent = left !== null && left <= 600 ? 'true' : 'false';
  }
}
