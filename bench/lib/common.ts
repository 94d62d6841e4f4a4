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
