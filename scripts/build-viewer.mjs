// Builds the memory viewer's page (src/serve/viewer/page) into dist/viewer: type-checks it
// against its own tsconfig (DOM types), bundles app.ts with d3 by esbuild into one app.js, and
// copies index.html and app.css. The server serves these files only: nothing is fetched at run
// time. Run by `npm run build`, prepack and scripts/setup.sh, after tsc.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const page = join(root, 'src/serve/viewer/page');
const out = join(root, 'dist/viewer');
const require = createRequire(import.meta.url);

const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', page], { stdio: 'inherit' });
if (tsc.status !== 0) {
  console.error('build-viewer: the page does not type-check (see above)');
  process.exit(1);
}
const { build } = await import('esbuild');
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(page, 'app.ts')],
  outfile: join(out, 'app.js'),
  bundle: true,
  format: 'iife',
  target: 'es2020',
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
});
for (const file of ['index.html', 'app.css']) copyFileSync(join(page, file), join(out, file));
console.log(`build-viewer: ${out}`);
