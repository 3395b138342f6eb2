/**
 * The fuzz sandbox's child process (started by Sandbox in test/helpers/fuzz.ts with a small heap and
 * --expose-gc). It loads the targets it is asked to warm, then runs one case per message: a full GC
 * when garbage has piled up, the call, and a report of its duration (performance.now), the process's peak resident memory, and
 * whether it returned, threw a UserError ('rejected') or threw anything else ('crash').
 */
import { UserError } from '../../src/util/errors.js';
import { TARGETS, type TargetName } from './fuzz-targets.js';

const gc = (globalThis as { gc?: () => void }).gc ?? ((): void => {});
const peakRssMb = (): number => process.resourceUsage().maxRSS / 1024;
/** Resident memory when ready; a case starts with a full GC only when garbage has grown past it (a GC per case costs more than most cases). */
let readyRss = 0;
const GC_SLACK = 32 * 1024 * 1024;

function errorFields(e: unknown): { name: string; message: string; stack: string } {
  if (e instanceof Error) return { name: e.constructor?.name ?? e.name, message: e.message, stack: e.stack ?? '' };
  return { name: typeof e, message: String(e), stack: '' };
}

// Never outlive the test process that started it.
process.on('disconnect', () => process.exit(0));

process.on('message', (msg: { type: string; id?: number; target?: TargetName; input?: unknown; targets?: TargetName[] }) => {
  if (msg.type === 'warm') {
    void (async () => {
      try {
        for (const t of msg.targets ?? []) await TARGETS[t]!.warm();
        gc();
        readyRss = process.memoryUsage.rss();
        process.send!({ type: 'ready', peakRssMb: peakRssMb() });
      } catch (e) {
        process.send!({ type: 'ready', error: errorFields(e).stack || String(e) });
      }
    })();
    return;
  }
  if (msg.type !== 'case') return;
  void (async () => {
    const target = TARGETS[msg.target!];
    if (process.memoryUsage.rss() > readyRss + GC_SLACK) gc();
    const t0 = performance.now();
    let result: Record<string, unknown>;
    try {
      if (!target) throw new Error(`no fuzz target '${msg.target}'`);
      const value = await target.run(msg.input);
      result = { kind: 'ok', value };
    } catch (e) {
      result = { kind: e instanceof UserError ? 'rejected' : 'crash', ...errorFields(e) };
    }
    const ms = performance.now() - t0;
    process.send!({ type: 'result', id: msg.id, ms, peakRssMb: peakRssMb(), ...result });
  })();
});
