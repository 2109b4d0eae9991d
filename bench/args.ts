// Command-line checks shared by the benchmarks. A benchmark runs for minutes, so a mistyped flag
// must stop it at once rather than be ignored: `--help` prints the file's leading comment (its
// usage) and exits; any other `--flag` that the leading comment does not mention is an error.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EngramError } from '../src/index.js';

/** Call first thing with `import.meta.url`; exits on --help or on a flag the usage does not name. */
export function checkBenchArgs(moduleUrl: string, argv = process.argv.slice(2)): void {
  const lines = readFileSync(fileURLToPath(moduleUrl), 'utf8').split('\n');
  const header: string[] = [];
  for (const line of lines) {
    if (!line.startsWith('//')) break;
    header.push(line.replace(/^\/\/ ?/, ''));
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(header.join('\n'));
    process.exit(0);
  }
  const known = new Set(header.join('\n').match(/--[a-z][a-z0-9-]*/g) ?? []);
  for (const a of argv) {
    const flag = a.split('=')[0]!;
    if (flag.startsWith('--') && !known.has(flag)) {
      console.error(`unknown option '${flag}'; --help lists this benchmark's options`);
      process.exit(2);
    }
  }
}

/**
 * An EngramError (a bad option value, a device or precision this machine lacks) ends the benchmark
 * with its one-line message and status 2; anything else is a bug and keeps its stack (status 1).
 */
export function exitWithError(e: unknown): never {
  if (e instanceof EngramError) {
    console.error(e.message);
    process.exit(2);
  }
  console.error(e);
  process.exit(1);
}

/** Runs a check of the command line; its EngramError ends the benchmark in one line (exitWithError). */
export function checked<T>(check: () => T): T {
  try {
    return check();
  } catch (e) {
    return exitWithError(e);
  }
}
