/**
 * The viewer's DOM: toolbar, expand tab, clipboard and settings panels, and the screen noVNC draws in.
 * mount.ts finds these elements by id, and browser tests by id and data attributes, so the ids are part
 * of the viewer's contract. They are unique in a document, which allows one viewer per page.
 *
 * Static markup only: nothing from the server or the user goes into this string, so parsing it as HTML
 * cannot inject anything. Text that comes from elsewhere is set with textContent by mount.ts.
 */

const MARKUP = `
<header id="jvnc-toolbar" class="jvnc-toolbar" aria-label="Desktop toolbar">
  <button type="button" id="jvnc-collapse" class="jvnc-icon-button" aria-label="Hide toolbar" title="Hide toolbar">
    <span aria-hidden="true">&#x25B4;</span>
  </button>
  <div id="jvnc-state" class="jvnc-state" role="status" aria-live="polite">
    <span class="jvnc-dot" aria-hidden="true"></span>
    <span id="jvnc-state-text">Loading the viewer&hellip;</span>
  </div>
  <div id="jvnc-info" class="jvnc-info" hidden>
    <span id="jvnc-info-text"></span>
    <span id="jvnc-gl-notice" class="jvnc-notice" hidden>software OpenGL</span>
    <span id="jvnc-time-left" class="jvnc-time-left" hidden></span>
    <span id="jvnc-share" class="jvnc-share" hidden></span>
  </div>
  <div class="jvnc-spacer"></div>
  <div class="jvnc-actions" role="group" aria-label="Viewer actions">
    <button type="button" id="jvnc-clipboard-toggle" aria-expanded="false" aria-controls="jvnc-clipboard-panel" hidden>Clipboard</button>
    <button type="button" id="jvnc-keys-toggle" aria-expanded="false" aria-controls="jvnc-keys-panel" hidden>Keys</button>
    <button type="button" id="jvnc-settings-toggle" aria-expanded="false" aria-controls="jvnc-settings-panel">Settings</button>
    <button type="button" id="jvnc-share-toggle" aria-expanded="false" aria-controls="jvnc-share-panel" hidden>Share</button>
    <button type="button" id="jvnc-fullscreen" hidden>Full screen</button>
    <button type="button" id="jvnc-connect-toggle">Disconnect</button>
    <button type="button" id="jvnc-restart" class="jvnc-danger" hidden>Restart desktop</button>
  </div>
  <nav class="jvnc-links" aria-label="Jupyter">
    <a id="jvnc-lab-link" href="#" target="_blank" rel="noopener" hidden>JupyterLab</a>
    <a id="jvnc-hub-link" href="#" target="_blank" rel="noopener" hidden>Hub</a>
  </nav>
</header>

<button type="button" id="jvnc-expand" class="jvnc-expand" aria-label="Show toolbar" title="Show toolbar" aria-controls="jvnc-toolbar" hidden>
  <span aria-hidden="true">&#x25BE;</span>
</button>

<section id="jvnc-clipboard-panel" class="jvnc-panel" aria-label="Clipboard" hidden>
  <label for="jvnc-clipboard-text">Clipboard of the remote desktop</label>
  <textarea id="jvnc-clipboard-text" rows="5" spellcheck="false" autocomplete="off"
            aria-describedby="jvnc-clipboard-help"></textarea>
  <p id="jvnc-clipboard-help" class="jvnc-help">Text copied on the desktop appears here. Text typed or pasted
    here is sent to the desktop's clipboard.</p>
  <div class="jvnc-panel-actions">
    <button type="button" id="jvnc-clipboard-paste">Send browser clipboard</button>
    <button type="button" id="jvnc-clipboard-clear">Clear</button>
  </div>
</section>

<section id="jvnc-keys-panel" class="jvnc-panel jvnc-keys-panel" aria-label="Keys" hidden>
  <p class="jvnc-help">Keys your browser or your own computer would keep for itself, sent to the desktop.</p>
  <div id="jvnc-keys-list" class="jvnc-keys"></div>
</section>

<section id="jvnc-settings-panel" class="jvnc-panel" aria-label="Settings" hidden>
  <div class="jvnc-field">
    <label for="jvnc-quality">Image quality</label>
    <input type="range" id="jvnc-quality" min="0" max="9" step="1" value="6" aria-describedby="jvnc-quality-help">
    <output id="jvnc-quality-value" for="jvnc-quality">6</output>
  </div>
  <p id="jvnc-quality-help" class="jvnc-help">0 = smallest, blurriest; 9 = sharpest.</p>
  <div class="jvnc-field">
    <label for="jvnc-compression">Compression</label>
    <input type="range" id="jvnc-compression" min="0" max="9" step="1" value="2" aria-describedby="jvnc-compression-help">
    <output id="jvnc-compression-value" for="jvnc-compression">2</output>
  </div>
  <p id="jvnc-compression-help" class="jvnc-help">Higher saves bandwidth on slow networks and costs server CPU.</p>
  <div class="jvnc-field">
    <label for="jvnc-resize">Screen size</label>
    <select id="jvnc-resize">
      <option value="remote">Fit desktop to window</option>
      <option value="scale">Scale picture to window</option>
      <option value="off">Keep desktop size</option>
    </select>
  </div>
  <div class="jvnc-field" id="jvnc-clipboard-direction-field">
    <label for="jvnc-clipboard-direction">Clipboard</label>
    <select id="jvnc-clipboard-direction">
      <option value="both">Both ways</option>
      <option value="to-desktop">Only to the desktop</option>
      <option value="from-desktop">Only from the desktop</option>
      <option value="off">Off</option>
    </select>
  </div>
  <div id="jvnc-native" class="jvnc-native" hidden>
    <p class="jvnc-share-heading">Your own VNC viewer</p>
    <p class="jvnc-help">On your computer, run the first command (it keeps running), then the second, with
      TurboVNC's or TigerVNC's viewer. Only your account can use it.</p>
    <div class="jvnc-field jvnc-share-linkrow">
      <label for="jvnc-native-ssh">1. ssh</label>
      <input type="text" id="jvnc-native-ssh" readonly>
      <button type="button" class="jvnc-copy" data-copy="jvnc-native-ssh">Copy</button>
    </div>
    <div class="jvnc-field jvnc-share-linkrow">
      <label for="jvnc-native-viewer">2. viewer</label>
      <input type="text" id="jvnc-native-viewer" readonly>
      <button type="button" class="jvnc-copy" data-copy="jvnc-native-viewer">Copy</button>
    </div>
  </div>
</section>

<section id="jvnc-share-panel" class="jvnc-panel jvnc-share-panel" aria-label="Share" hidden>
  <form id="jvnc-share-form" novalidate>
    <div class="jvnc-field">
      <label for="jvnc-share-name">Share with</label>
      <select id="jvnc-share-kind" aria-label="User or group">
        <option value="user">user</option>
        <option value="group">group</option>
      </select>
      <input type="text" id="jvnc-share-name" autocomplete="off" spellcheck="false" placeholder="name on this hub">
    </div>
    <div class="jvnc-field">
      <label for="jvnc-share-right">They may</label>
      <select id="jvnc-share-right">
        <option value="watch">watch</option>
        <option value="control">watch and control</option>
      </select>
    </div>
    <div class="jvnc-field">
      <label for="jvnc-share-minutes">For</label>
      <select id="jvnc-share-minutes">
        <option value="">until I revoke it</option>
        <option value="60">1 hour</option>
        <option value="240">4 hours</option>
        <option value="1440">1 day</option>
        <option value="10080">1 week</option>
      </select>
    </div>
    <div class="jvnc-panel-actions">
      <button type="submit" id="jvnc-share-add">Share</button>
    </div>
  </form>
  <p id="jvnc-share-message" class="jvnc-help jvnc-share-message" role="alert" hidden></p>
  <p class="jvnc-share-heading">Shared with</p>
  <ul id="jvnc-share-list" class="jvnc-share-list"></ul>
  <p id="jvnc-share-empty" class="jvnc-help">Nobody: only you see this desktop.</p>
  <div class="jvnc-field jvnc-share-linkrow">
    <label for="jvnc-share-link">Their link</label>
    <input type="text" id="jvnc-share-link" readonly>
    <button type="button" id="jvnc-share-copy">Copy</button>
  </div>
  <p class="jvnc-help">Restart and stop stay yours. Revoking ends their open view at once.</p>
</section>

<div id="jvnc-idle" class="jvnc-idle" role="alert" hidden>
  <span id="jvnc-idle-text"></span>
  <button type="button" id="jvnc-keep">Resume</button>
</div>

<main id="jvnc-screen" class="jvnc-screen" aria-label="Remote desktop"></main>
`;

/**
 * Puts the viewer's elements at the start of `root` (before anything already there, such as the
 * standalone page's <noscript>) and returns them, so that they can be removed again.
 */
export function addViewerMarkup(root: HTMLElement): ChildNode[] {
  const template = root.ownerDocument.createElement('template');
  template.innerHTML = MARKUP;
  const nodes = Array.from(template.content.childNodes);
  root.prepend(template.content);
  return nodes;
}
