import { describe, expect, it } from 'vitest';

import { COMBOS, comboEvents, sendCombo } from './keys';

const byId = (id: string) => COMBOS.find((c) => c.id === id)!;

describe('comboEvents', () => {
  it('presses in order and releases in reverse, as fingers do', () => {
    expect(comboEvents(byId('ctrl-alt-del'))).toEqual([
      [0xffe3, 'ControlLeft', true],
      [0xffe9, 'AltLeft', true],
      [0xffff, 'Delete', true],
      [0xffff, 'Delete', false],
      [0xffe9, 'AltLeft', false],
      [0xffe3, 'ControlLeft', false],
    ]);
    expect(comboEvents(byId('esc'))).toEqual([
      [0xff1b, 'Escape', true],
      [0xff1b, 'Escape', false],
    ]);
  });

  it('has Ctrl+Alt+F1 to F12 with the right keysyms', () => {
    const fkeys = COMBOS.filter((c) => c.id.startsWith('ctrl-alt-f'));
    expect(fkeys.map((c) => c.label)).toEqual(Array.from({ length: 12 }, (_, i) => `F${i + 1}`));
    expect(byId('ctrl-alt-f1').keys[2]).toEqual([0xffbe, 'F1']);
    expect(byId('ctrl-alt-f12').keys[2]).toEqual([0xffc9, 'F12']);
    expect(byId('super').keys).toEqual([[0xffeb, 'MetaLeft']]);
  });
});

describe('sendCombo', () => {
  it('sends every event of the combo to the sink', () => {
    const sent: Array<[number, string | null, boolean | undefined]> = [];
    sendCombo({ sendKey: (k, c, d) => sent.push([k, c, d]) }, byId('tab'));
    expect(sent).toEqual([
      [0xff09, 'Tab', true],
      [0xff09, 'Tab', false],
    ]);
  });
});
