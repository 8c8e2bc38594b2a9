/**
 * Clipboard sync between the remote desktop and the page: a textarea panel that always works, plus the
 * browser's async clipboard API where the browser allows it (secure context, focused page, permission).
 */

import type { ClipboardDirection } from './settings';

export interface ClipboardRfb {
  addEventListener(type: string, listener: (event: Event) => void): void;
  clipboardPasteFrom(text: string): void;
}

export interface ClipboardElements {
  textarea: HTMLTextAreaElement;
  pasteButton: HTMLButtonElement;
  clearButton: HTMLButtonElement;
}

/** Whether text from the browser is news to the desktop (not what it just sent us, nor what we sent it). */
export function isNewText(text: string | null | undefined, lastFromRemote: string, lastSent: string): text is string {
  return typeof text === 'string' && text !== '' && text !== lastFromRemote && text !== lastSent;
}

export class ClipboardSync {
  private rfb: ClipboardRfb | null = null;
  private lastFromRemote = '';
  private lastSent = '';
  private typingTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly el: ClipboardElements,
    private readonly clipboard: Clipboard | undefined = navigator.clipboard,
    /** Which way text may go now (the user's setting); both ways unless told. */
    private readonly direction: () => ClipboardDirection = () => 'both',
  ) {
    el.textarea.addEventListener('input', () => {
      clearTimeout(this.typingTimer);
      this.typingTimer = setTimeout(() => this.send(el.textarea.value), 300);
    });
    el.pasteButton.hidden = !this.clipboard?.readText;
    el.pasteButton.addEventListener('click', () => void this.pullFromBrowser(true));
    // Clears the panel only: the desktop's clipboard keeps its text.
    el.clearButton.addEventListener('click', () => {
      el.textarea.value = '';
      el.textarea.focus();
    });
  }

  /** Follows a new RFB connection: its clipboard events fill the panel (and the browser clipboard). */
  attach(rfb: ClipboardRfb): void {
    this.rfb = rfb;
    rfb.addEventListener('clipboard', (event) => {
      if (this.rfb !== rfb) {
        return;
      }
      const text = (event as CustomEvent<{ text?: string }>).detail?.text ?? '';
      this.fromRemote(text);
    });
  }

  private fromRemote(text: string): void {
    if (!fromDesktopAllowed(this.direction())) {
      return; // the user keeps the desktop's clipboard out of this browser
    }
    this.lastFromRemote = text;
    this.el.textarea.value = text;
    if (this.clipboard?.writeText && document.hasFocus()) {
      // Refused without focus or permission; the panel still has the text.
      this.clipboard.writeText(text).catch(() => undefined);
    }
  }

  private send(text: string): void {
    if (!toDesktopAllowed(this.direction())) {
      return; // the user keeps this browser's clipboard out of the desktop
    }
    this.lastSent = text;
    try {
      this.rfb?.clipboardPasteFrom(text);
    } catch {
      // not connected: the text is sent again with the next change
    }
  }

  /**
   * Copies the browser clipboard to the desktop. Without a click (`userGesture` false) only where the
   * permission is already granted, so that focusing the desktop never pops up a permission prompt.
   */
  async pullFromBrowser(userGesture: boolean): Promise<void> {
    if (!this.clipboard?.readText) {
      return;
    }
    if (!userGesture && !(await clipboardReadGranted())) {
      return;
    }
    try {
      const text = await this.clipboard.readText();
      if (isNewText(text, this.lastFromRemote, this.lastSent)) {
        this.el.textarea.value = text;
        this.send(text);
      }
    } catch {
      // denied, or the page lost focus
    }
  }
}

export const toDesktopAllowed = (direction: ClipboardDirection): boolean =>
  direction === 'both' || direction === 'to-desktop';
export const fromDesktopAllowed = (direction: ClipboardDirection): boolean =>
  direction === 'both' || direction === 'from-desktop';

async function clipboardReadGranted(): Promise<boolean> {
  try {
    const status = await navigator.permissions.query({ name: 'clipboard-read' as PermissionName });
    return status.state === 'granted';
  } catch {
    return false; // browsers that do not know this permission
  }
}
