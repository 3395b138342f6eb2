/** Running code on J ranks for the dist tests: worker threads of a `threads` group, or mpirun processes. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { createThreadGroup } from '../../src/parallel/threads.js';
import type { RankResult, RankSpec } from './train-rank.js';

/** Why MPI tests cannot run here, or null when they can (mpirun on PATH, addon built with MPI). */
export function mpiSkipReason(): string | null {
  const r = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return 'mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev): MPI tests skipped';
  return null;
}

/** mpirun's arguments for N ranks on one machine (CI runs as root; 2 cores host 4 ranks). */
export function mpirunArgs(n: number): string[] {
  return ['--allow-run-as-root', '--oversubscribe', '-np', String(n)];
}

/** Environment for mpirun in containers: no cross-memory-attach (often forbidden by ptrace rules). */
export function mpiEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, OMPI_MCA_btl_vader_single_copy_mechanism: 'none', ...extra };
}

/** runRank on J worker-thread ranks of one thread group. */
export async function onThreads(J: number, spec: RankSpec): Promise<RankResult[]> {
  const group = createThreadGroup(J);
  try {
    const url = new URL('./train-rank-thread.js', import.meta.url);
    return await Promise.all(
      Array.from({ length: J }, (_, rank) => {
        const w = new Worker(url, { workerData: { groupId: group.id, rank, spec } });
        return new Promise<RankResult>((resolve, reject) => {
          w.once('message', resolve);
          w.once('error', (e) => {
            group.abort(`rank ${rank} failed: ${String(e)}`);
            reject(e);
          });
        });
      }),
    );
  } finally {
    group.release();
  }
}

/** runRank on J mpirun processes. */
export function onMpi(J: number, spec: RankSpec): RankResult[] {
  const dir = mkdtempSync(join(tmpdir(), 'adabatch-mpi-'));
  try {
    const specPath = join(dir, 'spec.json');
    writeFileSync(specPath, JSON.stringify(spec));
    const child = fileURLToPath(new URL('./train-rank-mpi.js', import.meta.url));
    const r = spawnSync('mpirun', [...mpirunArgs(J), process.execPath, child, specPath, dir], { encoding: 'utf8', env: mpiEnv(), timeout: 120_000 });
    if (r.status !== 0) throw new Error(`mpirun exited with ${r.status ?? r.signal}:\n${r.stderr}\n${r.stdout}`);
    return Array.from({ length: J }, (_, rank) => JSON.parse(readFileSync(join(dir, `rank-${rank}.json`), 'utf8')) as RankResult);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A collective scenario (collective-scenarios.ts) on J worker-thread ranks; returns each rank's result. */
export async function scenarioOnThreads(J: number, name: string, timeout = 30): Promise<unknown[]> {
  const group = createThreadGroup(J);
  try {
    const url = new URL('./collective-scenario-thread.js', import.meta.url);
    return await Promise.all(
      Array.from({ length: J }, (_, rank) => {
        const w = new Worker(url, { workerData: { groupId: group.id, rank, name, timeout } });
        return new Promise<unknown>((resolve, reject) => {
          w.on('message', (m: { abortGroup?: boolean; result?: unknown }) => {
            if (m.abortGroup) {
              group.abort('the launcher stopped the run');
              w.postMessage('aborted');
            } else resolve(m.result);
          });
          w.once('error', reject);
        });
      }),
    );
  } finally {
    group.release();
  }
}

/** A collective scenario on J mpirun processes. */
export function scenarioOnMpi(J: number, name: string): unknown[] {
  const dir = mkdtempSync(join(tmpdir(), 'adabatch-mpi-'));
  try {
    const child = fileURLToPath(new URL('./collective-scenario-mpi.js', import.meta.url));
    const r = spawnSync('mpirun', [...mpirunArgs(J), process.execPath, child, name, dir], { encoding: 'utf8', env: mpiEnv(), timeout: 120_000 });
    if (r.status !== 0) throw new Error(`mpirun exited with ${r.status ?? r.signal}:\n${r.stderr}\n${r.stdout}`);
    return Array.from({ length: J }, (_, rank) => (JSON.parse(readFileSync(join(dir, `rank-${rank}.json`), 'utf8')) as { result: unknown }).result);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
