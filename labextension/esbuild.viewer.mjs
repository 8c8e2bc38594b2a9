// Builds the desktop viewer page's script and style into ../jupyter_vnc/static/ (viewer.js, viewer.css).
//
//   node esbuild.viewer.mjs           production build (minified, no source map)
//   node esbuild.viewer.mjs --dev     readable build with a source map
//   node esbuild.viewer.mjs --watch   rebuild on change (with --dev)
//   node esbuild.viewer.mjs --clean   remove what the build writes
//
// The bundle is an ES module (format "esm"), loaded by the page with <script type="module"> (noVNC 1.7's
// modules are written for that; its one top-level await is moved beside, below).
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

// noVNC probes the browser's H.264 decoder at load, with a top-level await that decodes a test frame:
// nothing of the viewer runs, and no connection opens, until it is done. TigerVNC's and TurboVNC's
// servers never send H.264, so the probe runs beside the viewer instead (its answer still lands in the
// same variable before noVNC reads it, or noVNC offers no H.264, which these servers ignore anyway).
const H264_PROBE = 'supportsWebCodecsH264Decode = await _checkWebCodecsH264DecodeSupport();';
const probeBeside = {
  name: 'novnc-h264-probe-beside',
  setup(build) {
    build.onLoad({ filter: /[\\/]@novnc[\\/]novnc[\\/]core[\\/]util[\\/]browser\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      if (!source.includes(H264_PROBE)) {
        throw new Error(`${args.path} no longer has "${H264_PROBE}": review this build step`);
      }
      const beside =
        '_checkWebCodecsH264DecodeSupport().then((supported) => { supportsWebCodecsH264Decode = supported; });';
      return { contents: source.replace(H264_PROBE, beside), loader: 'js' };
    });
  },
};

const options = {
  absWorkingDir: here,
  plugins: [probeBeside],
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
