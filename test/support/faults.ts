/**
 * Shared by the seeded fault runs (faults-*.test.ts): a small corpus in a real registry, clients
 * with short timeouts and backoffs so twenty seeds fit in a minute or two, and the figures each
 * run records (faults injected, time against the fault-free run).
 */
import { RegistryClient } from '../../src/registry/client.js';
import type { RegistryEvent } from '../../src/registry/events.js';
import type { FaultKind } from './fault-proxy.js';

/** Seeds per command: the issue asks for at least 20. */
export const SEEDS = Array.from({ length: 20 }, (_, i) => i + 1);

/** Share of requests the proxy breaks. */
export const FAULT_RATE = 0.15;

/**
 * 1 s timeouts (every stall costs one), 20 ms doubling to 250 ms backoffs, Retry-After capped at
 * 1 s: faults cost seconds, not minutes, and the bound below stays meaningful.
 */
export const FAST = {
  timeouts: { connectMs: 1_000, headersMs: 1_000, bodyMs: 1_000 },
  retry: { baseDelayMs: 20, maxDelayMs: 250, maxRetryAfterMs: 1_000 },
};

/**
 * A faulted run may take at most this much longer than the fault-free one: the proxy faults a
 * request key at most twice in a row, a slow fault (stall, trickle, Retry-After) costs up to ~2 s
 * with 1 s timeouts (undici checks them on a coarse clock), and a run meets a handful.
 */
export const EXTRA_MS = 30_000;

export function fastClient(host: string, onEvent?: (e: RegistryEvent) => void): RegistryClient {
  return new RegistryClient(host, {
    plainHttp: true,
    userAgent: 'airlock-test',
    certsDirs: [],
    authFiles: [],
    ...FAST,
    ...(onEvent === undefined ? {} : { onEvent }),
  });
}

/** One run's figures. */
export interface RunFigure {
  command: string;
  seed: number;
  requests: number;
  faults: number;
  retries: number;
  byKind: Partial<Record<FaultKind, number>>;
  ms: number;
}

/** Print the figures per command: runs, faults injected, slowest run against fault-free. */
export function printFigures(figures: readonly RunFigure[], baselines: ReadonlyMap<string, number>): string {
  const lines: string[] = [];
  for (const command of [...new Set(figures.map((f) => f.command))]) {
    const runs = figures.filter((f) => f.command === command);
    const base = baselines.get(command) ?? NaN;
    const faults = runs.reduce((n, r) => n + r.faults, 0);
    const retries = runs.reduce((n, r) => n + r.retries, 0);
    const slowest = runs.reduce((a, b) => (b.ms > a.ms ? b : a));
    const kinds: Partial<Record<string, number>> = {};
    for (const r of runs) for (const [k, n] of Object.entries(r.byKind)) kinds[k] = (kinds[k] ?? 0) + (n ?? 0);
    lines.push(
      `${command}: ${runs.length} seeds, ${faults} faults injected (${Math.min(...runs.map((r) => r.faults))}-${Math.max(...runs.map((r) => r.faults))} per run), ` +
        `${retries} retries [${Object.entries(kinds)
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')}]; fault-free ${Math.round(base)} ms, slowest ${Math.round(slowest.ms)} ms (seed ${slowest.seed}, ${(slowest.ms / base).toFixed(1)}x)`,
    );
  }
  return lines.join('\n');
}
