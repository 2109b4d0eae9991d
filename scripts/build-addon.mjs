#!/usr/bin/env node
// Builds native/build/Release/engram.node with node-gyp, skipping the build when neither the
// sources nor the libtorch it links against changed since the last one (a stamp file records both).
// It is also the package's `install` script: `npm install engram` builds the addon in place
// (node-gyp and node-addon-api are dependencies; they may be hoisted above this package).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync, renameSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findLibtorch } from './find-libtorch.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const native = join(root, 'native');
const output = join(native, 'build', 'Release', 'engram.node');
const stampFile = join(native, 'build', 'engram-build-stamp');

const torch = findLibtorch();
if (torch.error) {
  console.error([
    `engram: libtorch not found, so the native addon cannot be built: ${torch.error}`,
    '  Debian / Ubuntu, as root: apt-get update && apt-get install -y --no-install-recommends libtorch-dev libopenblas0-pthread',
    '  or point LIBTORCH at a libtorch folder or a pip torch package (LIBTORCH=/path/to/libtorch), then install again',
    '  (in a checkout of the repository: bash scripts/setup.sh does all of it)',
  ].join('\n'));
  process.exit(1);
}

const hash = createHash('sha256');
hash.update(JSON.stringify(torch));
hash.update(process.version);
for (const dir of [join(native, 'src')]) {
  for (const f of readdirSync(dir).sort()) hash.update(f).update(readFileSync(join(dir, f)));
}
hash.update(readFileSync(join(native, 'binding.gyp')));
const stamp = hash.digest('hex');

if (!process.argv.includes('--force') && existsSync(output) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
  console.log('engram: native addon is up to date');
  process.exit(0);
}

console.log(`engram: building the native addon against libtorch ${torch.version} (${torch.source}: ${torch.lib})`);
const started = Date.now();
const gyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
const jobs = String(Math.max(1, (await import('node:os')).availableParallelism()));
// Build against the running Node's own headers (no network here to download them).
const nodedir = join(dirname(process.execPath), '..');
if (!existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) {
  console.error(`engram: Node's headers are missing from ${nodedir}/include/node; install them (Debian: apt-get install nodejs-dev or libnode-dev)`);
  process.exit(1);
}
const result = spawnSync(process.execPath, [gyp, 'rebuild', '--jobs', jobs, `--nodedir=${nodedir}`], { cwd: native, stdio: 'inherit' });
if (result.status !== 0) {
  console.error('engram: the native build failed (see the compiler output above)');
  process.exit(result.status ?? 1);
}
writeFileSync(stampFile + '.tmp', stamp);
renameSync(stampFile + '.tmp', stampFile);
console.log(`engram: native addon built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
