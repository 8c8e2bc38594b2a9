// Builds the desktop viewer page's script and style into ../jupyter_vnc/static/ (viewer.js, viewer.css).
//
//   node esbuild.viewer.mjs           production build (minified, no source map)
//   node esbuild.viewer.mjs --dev     readable build with a source map
//   node esbuild.viewer.mjs --watch   rebuild on change (with --dev)
//   node esbuild.viewer.mjs --clean   remove what the build writes
//
// noVNC 1.7 has top-level awaits, so the bundle must be an ES module (format "esm"), loaded by the page
// with <script type="module">.
import { readFileSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, '..', 'jupyter_vnc', 'static');
const outputs = ['viewer.js', 'viewer.js.map', 'viewer.css', 'viewer.css.map', 'viewer.LICENSES.txt'];
const args = new Set(process.argv.slice(2));
const dev = args.has('--dev');

function clean() {
  for (const name of outputs) {
    rmSync(join(outdir, name), { force: true });
  }
}

if (args.has('--clean')) {
  clean();
  process.exit(0);
}

// noVNC is MPL-2.0: ship its license texts and say where its source is. (Its package.json is not in
// its "exports", so it is read by path.)
const novncDir = join(here, 'node_modules', '@novnc', 'novnc');
const novnc = JSON.parse(readFileSync(join(novncDir, 'package.json'), 'utf8'));
const banner =
  `/*! jupyter-vnc desktop viewer. Includes noVNC ${novnc.version} (${novnc.license}), ` +
  `source: ${novnc.homepage}; licenses: viewer.LICENSES.txt */`;

const options = {
  absWorkingDir: here,
  entryPoints: { viewer: 'src/viewer/main.ts' },
  outdir,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  // Top-level await: Chrome/Edge 89, Firefox 89, Safari 15.
  target: ['es2022'],
  minify: !dev,
  sourcemap: dev ? 'linked' : false,
  legalComments: 'none',
  banner: { js: banner, css: banner },
  logLevel: 'info',
};

clean();
mkdirSync(outdir, { recursive: true });
const licenseFiles = ['LICENSE.txt', 'docs/LICENSE.MPL-2.0', 'docs/LICENSE.BSD-3-Clause', 'docs/LICENSE.BSD-2-Clause', 'vendor/pako/LICENSE'];
writeFileSync(
  join(outdir, 'viewer.LICENSES.txt'),
  `viewer.js bundles noVNC ${novnc.version} (${novnc.homepage}), licensed as follows.\n` +
    licenseFiles
      .map((name) => `\n===== noVNC ${name} =====\n\n` + readFileSync(join(novncDir, name), 'utf8'))
      .join(''),
);

if (args.has('--watch')) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
  console.log(`watching src/viewer, writing ${outdir}`);
} else {
  await esbuild.build(options);
}
