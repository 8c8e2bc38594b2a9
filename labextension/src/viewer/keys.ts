/**
 * Keys the browser or the user's own desktop keeps for itself (Ctrl+Alt+Del, Ctrl+Alt+F1..F12, the
 * Super key, Esc leaving full screen, Tab moving the focus), sent to the remote desktop from the Keys
 * panel: each press in order, then each release in reverse, as a person's fingers would.
 */

/** An X keysym and the DOM `code` noVNC sends with it. */
type Key = readonly [keysym: number, code: string];

const CTRL: Key = [0xffe3, 'ControlLeft'];
const ALT: Key = [0xffe9, 'AltLeft'];
const SUPER: Key = [0xffeb, 'MetaLeft'];
const fKey = (n: number): Key => [0xffbe + n - 1, `F${n}`];

export interface KeyCombo {
  id: string;
  label: string;
  title: string;
  keys: readonly Key[];
}

export const COMBOS: readonly KeyCombo[] = [
  { id: 'ctrl-alt-del', label: 'Ctrl+Alt+Del', title: 'Send Ctrl+Alt+Delete', keys: [CTRL, ALT, [0xffff, 'Delete']] },
  { id: 'esc', label: 'Esc', title: 'Send Escape (the browser uses it to leave full screen)', keys: [[0xff1b, 'Escape']] },
  { id: 'tab', label: 'Tab', title: 'Send Tab', keys: [[0xff09, 'Tab']] },
  { id: 'alt-tab', label: 'Alt+Tab', title: 'Switch windows on the desktop', keys: [ALT, [0xff09, 'Tab']] },
  { id: 'super', label: 'Super', title: 'Send the Super (Windows) key', keys: [SUPER] },
  { id: 'alt-f4', label: 'Alt+F4', title: 'Close the window that has the focus on the desktop', keys: [ALT, fKey(4)] },
  { id: 'print', label: 'Print', title: 'Send Print Screen', keys: [[0xff61, 'PrintScreen']] },
  ...Array.from({ length: 12 }, (_, i) => ({
    id: `ctrl-alt-f${i + 1}`,
    label: `F${i + 1}`,
    title: `Send Ctrl+Alt+F${i + 1}`,
    keys: [CTRL, ALT, fKey(i + 1)],
  })),
];

/** What to send for `combo`: [keysym, code, down] in order. */
export function comboEvents(combo: KeyCombo): Array<[number, string, boolean]> {
  const presses = combo.keys.map(([sym, code]): [number, string, boolean] => [sym, code, true]);
  const releases = [...combo.keys].reverse().map(([sym, code]): [number, string, boolean] => [sym, code, false]);
  return [...presses, ...releases];
}

export interface KeySink {
  sendKey(keysym: number, code: string | null, down?: boolean): void;
}

export function sendCombo(sink: KeySink, combo: KeyCombo): void {
  for (const [sym, code, down] of comboEvents(combo)) {
    sink.sendKey(sym, code, down);
  }
}

/** Fills `list` with a button per combo; `send` gets the combo a button stands for. */
export function addKeyButtons(list: HTMLElement, send: (combo: KeyCombo) => void, signal: AbortSignal): void {
  const doc = list.ownerDocument;
  const main = doc.createElement('div');
  main.className = 'jvnc-keys-main';
  const fkeys = doc.createElement('div');
  fkeys.className = 'jvnc-keys-f';
  const label = doc.createElement('span');
  label.className = 'jvnc-help';
  label.textContent = 'Ctrl+Alt+';
  fkeys.append(label);
  for (const combo of COMBOS) {
    const button = doc.createElement('button');
    button.type = 'button';
    button.textContent = combo.label;
    button.title = combo.title;
    button.dataset.combo = combo.id;
    button.addEventListener('click', () => send(combo), { signal });
    (combo.id.startsWith('ctrl-alt-f') ? fkeys : main).append(button);
  }
  list.replaceChildren(main, fkeys);
}
