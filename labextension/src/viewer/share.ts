/**
 * The owner's Share panel: share the desktop with a user or a group (to watch, or to watch and control,
 * for a time or until revoked), see who has it and who is watching right now, revoke with one click.
 * The server (share_grants.py) asks the hub; what the hub refuses comes back as a message shown here.
 * Names and messages from the server are set with textContent only.
 */

import { authHeaders, errorMessage, type Credentials } from './server';

export interface ShareRow {
  kind: 'user' | 'group';
  name: string;
  right: 'watch' | 'control';
  expiresAt: string | null;
}

export interface Watcher {
  user: string;
  role: string;
  connections: number;
}

export interface ShareState {
  shares: ShareRow[];
  watching: Watcher[];
}

/** The server's `{"shares": [...], "watching": [...]}`; rows it cannot read are left out. */
export function parseShareState(raw: unknown): ShareState {
  const obj = raw !== null && typeof raw === 'object' ? (raw as Record<string, unknown>) : {};
  const shares: ShareRow[] = [];
  for (const item of Array.isArray(obj.shares) ? obj.shares : []) {
    if (item === null || typeof item !== 'object') {
      continue;
    }
    const row = item as Record<string, unknown>;
    if ((row.kind === 'user' || row.kind === 'group') && typeof row.name === 'string' && row.name) {
      shares.push({
        kind: row.kind,
        name: row.name,
        right: row.right === 'control' ? 'control' : 'watch',
        expiresAt: typeof row.expires_at === 'string' ? row.expires_at : null,
      });
    }
  }
  const watching: Watcher[] = [];
  for (const item of Array.isArray(obj.watching) ? obj.watching : []) {
    if (item === null || typeof item !== 'object') {
      continue;
    }
    const w = item as Record<string, unknown>;
    if (typeof w.user === 'string') {
      watching.push({
        user: w.user,
        role: typeof w.role === 'string' ? w.role : 'view',
        connections: typeof w.connections === 'number' ? w.connections : 1,
      });
    }
  }
  return { shares, watching };
}

/** "until you revoke it", "ends in 3 h 20 min", "ends in 45 s"... for a share's end. */
export function describeExpiry(expiresAt: string | null, now: number): string {
  if (!expiresAt) {
    return 'until you revoke it';
  }
  const left = Math.round((Date.parse(expiresAt) - now) / 1000);
  if (!Number.isFinite(left)) {
    return 'until you revoke it';
  }
  if (left <= 0) {
    return 'ending now';
  }
  const days = Math.floor(left / 86400);
  const hours = Math.floor((left % 86400) / 3600);
  const minutes = Math.floor((left % 3600) / 60);
  if (days > 0) {
    return `ends in ${days} d${hours ? ` ${hours} h` : ''}`;
  }
  if (hours > 0) {
    return `ends in ${hours} h${minutes ? ` ${minutes} min` : ''}`;
  }
  return minutes > 0 ? `ends in ${minutes} min` : `ends in ${left} s`;
}

/** What the list says of one share: its right, its end, and whether its people are watching now. */
export function describeShare(row: ShareRow, watching: Watcher[], now: number): string {
  const right = row.right === 'control' ? 'may watch and control' : 'may watch';
  const parts = [right, describeExpiry(row.expiresAt, now)];
  if (row.kind === 'user') {
    const here = watching.find((w) => w.user === row.name);
    if (here) {
      parts.push(here.connections > 1 ? `watching now (${here.connections} tabs)` : 'watching now');
    }
  }
  return parts.join(' · ');
}

/** A request to the shares API; the server's message on failure. */
export async function sharesRequest(
  url: string,
  credentials: Credentials,
  init: { method?: string; body?: unknown } = {},
  fetchImpl: typeof fetch = fetch,
): Promise<ShareState> {
  const headers: Record<string, string> = { Accept: 'application/json', ...authHeaders(credentials) };
  if (init.body !== undefined) {
    headers['Content-Type'] = 'application/json';
  }
  const response = await fetchImpl(url, {
    method: init.method ?? 'GET',
    credentials: 'same-origin',
    cache: 'no-store',
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await response.text().catch(() => '');
  if (!response.ok) {
    throw new Error(errorMessage(response.status, response.statusText, text));
  }
  return parseShareState(JSON.parse(text || '{}'));
}

export interface SharePanelOptions {
  sharesUrl: string;
  /** Absolute URL of the viewer page: the link a recipient opens. */
  link: string;
  credentials: () => Credentials;
  byId: <T extends HTMLElement>(id: string) => T;
  signal: AbortSignal;
}

export interface SharePanel {
  /** Reads the share list again (the panel was opened, or someone connected). */
  refresh(): Promise<void>;
}

export function mountSharePanel(options: SharePanelOptions): SharePanel {
  const { byId, signal } = options;
  const ui = {
    form: byId<HTMLFormElement>('jvnc-share-form'),
    kind: byId<HTMLSelectElement>('jvnc-share-kind'),
    name: byId<HTMLInputElement>('jvnc-share-name'),
    right: byId<HTMLSelectElement>('jvnc-share-right'),
    minutes: byId<HTMLSelectElement>('jvnc-share-minutes'),
    add: byId<HTMLButtonElement>('jvnc-share-add'),
    message: byId<HTMLElement>('jvnc-share-message'),
    list: byId<HTMLUListElement>('jvnc-share-list'),
    empty: byId<HTMLElement>('jvnc-share-empty'),
    link: byId<HTMLInputElement>('jvnc-share-link'),
    copy: byId<HTMLButtonElement>('jvnc-share-copy'),
  };
  ui.link.value = options.link;
  let state: ShareState = { shares: [], watching: [] };

  const say = (text: string, kind: 'error' | 'done' = 'error'): void => {
    ui.message.hidden = !text;
    ui.message.textContent = text;
    ui.message.dataset.kind = kind;
  };

  const render = (): void => {
    const now = Date.now();
    const rows = state.shares.map((row) => {
      const li = document.createElement('li');
      li.dataset.share = `${row.kind}:${row.name}`;
      li.dataset.right = row.right;
      const who = document.createElement('span');
      who.className = 'jvnc-share-who';
      who.textContent = row.kind === 'group' ? `group ${row.name}` : row.name;
      const what = document.createElement('span');
      what.className = 'jvnc-share-what';
      what.textContent = describeShare(row, state.watching, now);
      const revoke = document.createElement('button');
      revoke.type = 'button';
      revoke.className = 'jvnc-danger';
      revoke.textContent = 'Revoke';
      revoke.setAttribute('aria-label', `Revoke the share with ${who.textContent}`);
      revoke.addEventListener('click', () => {
        void change(
          `${options.sharesUrl}/${row.kind}/${encodeURIComponent(row.name)}`,
          { method: 'DELETE' },
          `${who.textContent} can no longer see this desktop.`,
        );
      });
      li.append(who, what, revoke);
      return li;
    });
    ui.list.replaceChildren(...rows);
    ui.empty.hidden = rows.length > 0;
  };

  const change = async (url: string, init: { method: string; body?: unknown }, done: string): Promise<void> => {
    ui.add.disabled = true;
    try {
      state = await sharesRequest(url, options.credentials(), init);
      if (!signal.aborted) {
        say(done, 'done');
        render();
      }
    } catch (e) {
      if (!signal.aborted) {
        say(e instanceof Error ? e.message : String(e));
      }
    } finally {
      ui.add.disabled = false;
    }
  };

  ui.form.addEventListener(
    'submit',
    (event) => {
      event.preventDefault();
      const name = ui.name.value.trim();
      if (!name) {
        say(`Type the name of the ${ui.kind.value} to share with.`);
        ui.name.focus();
        return;
      }
      const body: Record<string, unknown> = { [ui.kind.value]: name, right: ui.right.value };
      if (ui.minutes.value) {
        body.minutes = Number(ui.minutes.value);
      }
      const rightText = ui.right.value === 'control' ? 'watch and control' : 'watch';
      void change(options.sharesUrl, { method: 'POST', body }, `Shared: ${name} may ${rightText}. Send them the link below.`).then(
        () => {
          if (ui.message.dataset.kind === 'done') {
            ui.name.value = '';
          }
        },
      );
    },
    { signal },
  );

  ui.copy.addEventListener(
    'click',
    () => {
      ui.link.select();
      const copied = navigator.clipboard?.writeText(ui.link.value);
      if (copied) {
        copied.then(
          () => say('Link copied.', 'done'),
          () => say('Select the link and copy it (the browser did not allow copying it here).'),
        );
      }
    },
    { signal },
  );

  return {
    async refresh(): Promise<void> {
      try {
        state = await sharesRequest(options.sharesUrl, options.credentials());
        if (!signal.aborted) {
          render();
        }
      } catch (e) {
        if (!signal.aborted) {
          say(e instanceof Error ? e.message : String(e));
        }
      }
    },
  };
}
