// Shared bits for benchmarks: machine description, percentiles, JSON result line.
import { cpus, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const repoRoot = join(__dirname, '..', '..', '..');

export function machine(): Record<string, unknown> {
  let nodeRed = 'unknown';
  try {
    nodeRed = (JSON.parse(readFileSync(require.resolve('node-red/package.json'), 'utf8')) as { version: string }).version;
  } catch {
    /* ignore */
  }
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    mem_gb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    node_red: nodeRed,
    platform: `${process.platform}-${process.arch}`,
  };
}

export function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

export const round = (v: number, d = 3): number => Math.round(v * 10 ** d) / 10 ** d;

/** Prints the benchmark's result: the last line of output is this JSON object. */
export function result(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

export function log(...a: unknown[]): void {
  process.stderr.write(a.map(String).join(' ') + '\n');
}

/**
 * The value of `--name value` (or `--name=value`) among this benchmark's
 * arguments (npm run bench -- NAME --name value passes them on), or undefined.
 */
export function flag(name: string): string | undefined {
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    if (a[i] === `--${name}`) return a[i + 1];
    if (a[i].startsWith(`--${name}=`)) return a[i].slice(name.length + 3);
  }
  return undefined;
}

/** Two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom. */
const T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];

/** Mean of `xs` and its 95 % confidence interval (Student's t; the samples taken as independent). */
export function meanCi95(xs: number[]): { mean: number; lo: number; hi: number; sd: number; n: number } {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / Math.max(1, n);
  if (n < 2) return { mean, lo: NaN, hi: NaN, sd: NaN, n };
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  const t = n - 1 <= T975.length ? T975[n - 2] : 1.96;
  const h = (t * sd) / Math.sqrt(n);
  return { mean, lo: mean - h, hi: mean + h, sd, n };
}
