// Engram as users get it: `npm pack`, then `npm install <tgz>` into a fresh ESM project, whose
// install script builds the native addon (minutes: once for this file). The project type-checks
// examples/quickstart.ts strictly without Node's types, runs it, and runs the CLI (--version and
// --help also without the addon, a 2-step train on the shipped tinyshakespeare).
// ENGRAM_SKIP_PACKAGE_TEST=1 skips it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url)); // this file is dist/test/package.test.js
const skip = process.env.ENGRAM_SKIP_PACKAGE_TEST === '1' ? 'ENGRAM_SKIP_PACKAGE_TEST=1' : false;
const version = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version;

/** Runs a command in dir; its stdout, or an assertion error with its output. */
function run(dir: string, cmd: string, args: string[], timeoutMs = 120_000): string {
  const r = spawnSync(cmd, args, { cwd: dir, encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, NO_COLOR: '1' } });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

test('the packed package installs, builds its addon, type-checks and runs from a fresh project', { skip }, async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'engram-package-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));

  // --ignore-scripts: pack dist as built (a prepack tsc would rewrite files other tests are loading).
  // npm up to 11 prints an array of packed packages, npm 12 an object keyed by package name.
  type Packed = { filename: string; files: { path: string }[] };
  const json = JSON.parse(execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], { cwd: repo, encoding: 'utf8' })) as Packed[] | Record<string, Packed>;
  const packed = Array.isArray(json) ? json : Object.values(json);
  const files = packed[0]!.files.map((f) => f.path);
  await t.test('the tarball holds the library, CLI, addon sources, install scripts and data, and no test, bench or example code', () => {
    for (const f of ['package.json', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/cli/engram.js', 'native/binding.gyp', 'native/src/addon.cpp',
      'scripts/build-addon.mjs', 'scripts/find-libtorch.mjs', 'data/tinyshakespeare.txt', 'dist/viewer/index.html', 'dist/viewer/app.js',
      'dist/src/serve/index.js', 'python/engram_torch.py']) {
      assert.ok(files.includes(f), `${f} is in the tarball`);
    }
    const stray = files.filter((f) => /^(dist\/)?(test|bench|examples)\//.test(f) || f.endsWith('.map') || f.startsWith('native/build/'));
    assert.deepEqual(stray, []);
  });

  const app = join(tmp, 'app');
  run(tmp, 'mkdir', [app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'engram-package-test', private: true, type: 'module' }));
  // The install script builds the addon (with LIBTORCH when set, else the system libtorch). npm 12
  // and later run a dependency's install script only once the project approves it: there the
  // install leaves the addon unbuilt, the library says what to run, and that builds it.
  const npmMajor = Number(run(app, 'npm', ['--version']).split('.')[0]);
  run(app, 'npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', join(tmp, packed[0]!.filename)], 15 * 60_000);
  const installed = join(app, 'node_modules', 'engram');
  const addon = join(installed, 'native', 'build', 'Release', 'engram.node');
  if (npmMajor >= 12) {
    assert.ok(!existsSync(addon), 'npm 12 blocked the install script');
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', "const e = await import('engram'); e.zeros([1])"], { cwd: app, encoding: 'utf8' });
    assert.match(r.stderr, /native addon is not built; in your project run: npm install-scripts approve engram && npm rebuild engram/);
    run(app, 'npm', ['install-scripts', 'approve', 'engram', '--loglevel=error']);
    run(app, 'npm', ['rebuild', 'engram', '--loglevel=error'], 15 * 60_000);
  }
  assert.ok(existsSync(addon), `npm ${npmMajor} built the addon`);

  await t.test('examples/quickstart.ts type-checks strictly without Node types and runs', () => {
    copyFileSync(join(repo, 'examples', 'quickstart.ts'), join(app, 'quickstart.ts'));
    assert.ok(!existsSync(join(app, 'node_modules', '@types', 'node')), "no @types/node in the project: Engram's declarations must not need it");
    run(app, process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '--strict', '--module', 'nodenext', '--outDir', 'build', 'quickstart.ts']);
    const out = run(app, process.execPath, [join('build', 'quickstart.js')]);
    assert.match(out, /^xl: \d+ parameters\nrmt: \d+ parameters, accuracy \d\.\d{3} after 2 steps\n$/);
  });

  await t.test("the server's entry point 'engram/serve' resolves from the installed package", () => {
    const out = run(app, process.execPath, ['--input-type=module', '-e', "const s = await import('engram/serve'); console.log(typeof s.startServer)"]);
    assert.equal(out.trim(), 'function');
  });

  await t.test('the CLI: --version, --help, a 2-step train on the shipped tinyshakespeare', () => {
    assert.equal(run(app, 'npx', ['--no-install', 'engram', '--version']).trim(), version);
    assert.match(run(app, 'npx', ['--no-install', 'engram', '--help']), /Usage: engram/);
    const out = run(app, 'npx', ['--no-install', 'engram', 'train', '--corpus', 'tinyshakespeare', '--model', 'xl', '--layers', '1', '--d-model', '16',
      '--heads', '2', '--d-inner', '32', '--segment-length', '16', '--batch-size', '2', '--steps', '2', '--set', 'data.maxEvalTokens=256', '--out', 'runs/lm']);
    assert.ok(existsSync(join(app, 'runs', 'lm', 'result.json')), `a run directory was written:\n${out}`);
  });

  await t.test('without the addon, --version and --help still work and a command names the fix', () => {
    const build = join(installed, 'native', 'build');
    renameSync(build, `${build}.away`);
    try {
      assert.equal(run(app, 'npx', ['--no-install', 'engram', '--version']).trim(), version);
      assert.match(run(app, 'npx', ['--no-install', 'engram', '--help']), /Usage: engram/);
      const r = spawnSync('npx', ['--no-install', 'engram', 'train', '--steps', '1'], { cwd: app, encoding: 'utf8' });
      assert.equal(r.status, 2);
      assert.match(r.stderr, /native addon is not built; .*npm rebuild engram .*node scripts\/build-addon\.mjs/);
    } finally {
      renameSync(`${build}.away`, build);
    }
  });
});
