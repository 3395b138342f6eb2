/**
 * The fuzzing harness shared by test/fuzz-*.test.ts (bounded: fixed seeds, a few seconds, part of
 * `npm test`) and test/fuzz-*.slow.test.ts (many more runs, a random seed printed for replay, part of
 * `npm run test:slow`).
 *
 * Every generated input runs in a sandbox: a child Node process (test/helpers/fuzz-child.ts) with a
 * small V8 heap, watched by this process, which
 *   - kills it (SIGKILL) when a case runs past its deadline                         → 'hang'
 *   - kills it when its resident memory grows past the bound above its baseline     → 'memory'
 *   - notices when it dies by itself (V8's "heap out of memory", an abort)          → 'died'
 * and otherwise receives what the code under test did: returned (a summary the property checks),
 * threw a UserError (the project's documented error type; SafetensorsError is one) → 'rejected', or
 * threw anything else (TypeError, RangeError, a library's own error class …) → 'crash'.
 * A property fails on crash / hang / memory / died, on a rejection whose message does not name the
 * file or the field, and on whatever its own oracle says about an accepted input.
 *
 * Replaying: every fuzz test prints its seed; `FUZZ_SEED=<seed> [FUZZ_PATH=<path>] node --test
 * --test-name-pattern '<test name>' dist/test/<file>.js` runs exactly that sequence again (the path,
 * printed with a failure, jumps straight to the shrunk counterexample). FUZZ_RUNS changes the number
 * of runs, FUZZ_TIME_S the time limit of each property.
 *
 * Known failures: inputs that crash / hang / are wrongly accepted today are classes in KNOWN below.
 * The main properties of both runs do not generate them (so `npm test` stays green while the fixes
 * are being written, and the slow run looks for new failures instead of re-finding these); the slow
 * run has, per open class, a `todo` property made of that class only (it reports whether the failure
 * is still there without failing the run), and per fixed class (FIXED) a regression property. Move an
 * entry to FIXED once its fix lands: every run then generates it again.
 */
import { strict as assert } from 'node:assert';
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { tempDir } from './tmp.js';

// ---------------------------------------------------------------------------------------------
// Known failures (see the file comment). Each id is a class of inputs the generators can leave out.

/** Open failures: classes of inputs that still crash, hang or are wrongly accepted. */
export const KNOWN: Record<string, string> = {
};

/**
 * Classes that were open and are fixed (kept for the record; the generators produce them again in
 * every run). Fixed in the commits after ed28179 (b3f3e1c tokenizer, 1074171 io, …).
 */
export const FIXED: Record<string, string> = {
  'safetensors-metadata-non-string': '__metadata__ values that are not strings (numbers, objects, arrays, null) or a __metadata__ that is not an object are accepted (stringified or ignored) instead of refused, unlike the format (Dict[str, str]) and the reference implementation',
  'train-config-yaml': "a --set value that is not valid YAML (e.g. 'seed=[', 'run_dir=\"') makes loadTrainConfig throw YAMLParseError, not a UserError (the command prints a stack trace)",
  'tokenizer-added-dash': "an added token whose content contains '-' (e.g. \"<|im-start|>\"): the added-token RegExp escapes it as \\- , which a u-flag RegExp refuses: loadTokenizer throws SyntaxError",
  'safetensors-zero-size': 'a zero-size tensor at the begin of (or inside) another one: readSafetensorsFile hashed bytes twice (false SHA-256 mismatch) and the overlap check skipped pairs around it',
  'checkpoint-dir-as-file': 'a checkpoint file replaced by a directory of the recorded size: readSync threw EISDIR (a plain Error)',
  'shard-index-duplicate': 'a shard index listing one shard file twice, or the files in another order: silently wrong tensors',
  'shard-index-shape': "a shard index that is null, has null units, lacks 'optimizer' or lists non-string names: TypeError",
  'tokenizer-huge-id': 'token ids of 2^24 and more: the id table was allocated to the largest id (out of memory, or RangeError)',
  'tokenizer-duplicate-id': 'two tokens with one id loaded, and decode(encode(s)) !== s',
  'tokenizer-backtracking': 'a Split pattern with catastrophic backtracking hung encode',
  'tokenizer-quadratic-split': 'a Split pattern whose first alternative scans a long run and then fails (e.g. \\p{L}+\\d|\\p{L}) made encode quadratic in the run length on the linear engine (32k letters ~20 s): each find scanned the whole run; searches now read a bounded window (LOOKAHEAD_HORIZON in src/data/tokenizer-json.ts)',
  'hf-config-huge': 'num_hidden_layers / max_position_embeddings far beyond any model were accepted; the layout / RoPE tables then ran out of memory',
};
export type KnownId = string;

/** Which known-failure classes a generator may produce. */
export interface Classes {
  /** Known classes left out. */
  exclude: ReadonlySet<KnownId>;
  /** When set, generate only inputs of these classes (the slow run's "still failing?" properties). */
  only?: ReadonlySet<KnownId>;
}
export const ALL_CLASSES: Classes = { exclude: new Set() };
/** Every open class left out: what the bounded run generates. */
export const WITHOUT_KNOWN: Classes = { exclude: new Set(Object.keys(KNOWN)) };
export const onlyKnown = (...ids: KnownId[]): Classes => ({ exclude: new Set(), only: new Set(ids) });
/** May a generator produce inputs of class `id`? (A class that is neither open nor asked for alone always may.) */
export const allows = (c: Classes, id: KnownId): boolean => !c.exclude.has(id) && (c.only === undefined || c.only.has(id) || !Object.hasOwn(KNOWN, id));

// ---------------------------------------------------------------------------------------------
// Running a property: seeds, numbers of runs, replay instructions.

export type Mode = 'bounded' | 'slow';

export interface FuzzSettings {
  mode: Mode;
  seed: number;
  numRuns: number;
  path: string | undefined;
  timeLimitMs: number;
}

/** A stable 31-bit seed from a name (the bounded run's fixed seeds). */
export function seedOf(name: string): number {
  let h = 2166136261;
  for (const ch of name) h = Math.imul(h ^ ch.codePointAt(0)!, 16777619);
  return (h >>> 0) & 0x7fffffff;
}

/**
 * Settings for one property: bounded runs use a fixed seed derived from the name, slow runs a random
 * one; FUZZ_SEED / FUZZ_PATH / FUZZ_RUNS / FUZZ_TIME_S override (for replaying a failure).
 */
export function fuzzSettings(mode: Mode, name: string, runs: { bounded: number; slow: number }, timeS: { bounded: number; slow: number }): FuzzSettings {
  const env = process.env;
  const seed = env.FUZZ_SEED !== undefined && env.FUZZ_SEED !== '' ? Number(env.FUZZ_SEED) : mode === 'bounded' ? seedOf(name) : (Date.now() ^ (Math.random() * 2 ** 31)) & 0x7fffffff;
  const numRuns = env.FUZZ_RUNS ? Number(env.FUZZ_RUNS) : runs[mode];
  const timeLimitMs = 1000 * (env.FUZZ_TIME_S ? Number(env.FUZZ_TIME_S) : timeS[mode]);
  return { mode, seed, numRuns, path: env.FUZZ_PATH || undefined, timeLimitMs };
}

/** How to run this property again with the same inputs (printed at the start and with a failure). */
export function replayHint(testFile: string, testName: string, seed: number, path?: string): string {
  const vars = `FUZZ_SEED=${seed}${path ? ` FUZZ_PATH=${path}` : ''}`;
  return `replay: npx tsc -p . && ${vars} node --test --test-name-pattern='${namePattern(testName)}' dist/test/${testFile}.js`;
}

/** The test's name as a --test-name-pattern that needs no escaping: every character special to a regex or a shell is a '.'. */
const namePattern = (s: string): string => s.replace(/[.*+?^${}()|[\]\\'"`!]/g, '.');

/** The node:test context methods used here. */
export interface TestContextLike {
  name: string;
  diagnostic(message: string): void;
}

/**
 * Runs an async fast-check property with the settings, printing the seed first; a failure throws an
 * AssertionError with fast-check's report (counterexample, shrunk) and the replay command.
 */
export async function runProperty<T>(t: TestContextLike, testFile: string, s: FuzzSettings, prop: fc.IAsyncPropertyWithHooks<T>): Promise<{ numRuns: number; interrupted: boolean }> {
  t.diagnostic(`seed ${s.seed}, ${s.numRuns} runs, time limit ${s.timeLimitMs / 1000} s; ${replayHint(testFile, t.name, s.seed)}`);
  const details = await fc.check(prop, {
    seed: s.seed,
    numRuns: s.numRuns,
    ...(s.path ? { path: s.path } : {}),
    interruptAfterTimeLimit: s.timeLimitMs,
    markInterruptAsFailure: false,
    // A failure is shrunk (each step re-runs the sandbox, a hang costs a deadline); the time limit
    // bounds shrinking too.
    endOnFailure: false,
  });
  if (details.failed) {
    const hint = replayHint(testFile, t.name, details.seed, details.counterexamplePath ?? undefined);
    const err = details.errorInstance;
    const why = err instanceof Error ? err.message : String(err);
    assert.fail(`${why}\n\n${fc.defaultReportMessage(details) ?? 'property failed'}\n${hint}`);
  }
  if (details.interrupted) t.diagnostic(`stopped by the time limit after ${details.numRuns} runs`);
  return { numRuns: details.numRuns, interrupted: details.interrupted };
}

// ---------------------------------------------------------------------------------------------
// The sandbox: one child process, one case at a time.

export interface SandboxLimits {
  /** Wall-clock limit of one case (the child is killed after it). */
  deadlineMs: number;
  /** Allowed growth of the child's resident memory above its baseline, in MiB. */
  memoryMb: number;
  /** The child's V8 old-space limit, in MiB (--max-old-space-size). */
  heapMb: number;
}

export const BOUNDED_LIMITS: SandboxLimits = { deadlineMs: 3000, memoryMb: 256, heapMb: 256 };
export const SLOW_LIMITS: SandboxLimits = { deadlineMs: 5000, memoryMb: 256, heapMb: 256 };

interface Measured {
  /** Milliseconds the call took (performance.now in the child; the deadline for hangs). */
  ms: number;
}
export type Outcome =
  | (Measured & { kind: 'ok'; value: unknown; peakGrowthMb: number })
  | (Measured & { kind: 'rejected'; name: string; message: string; peakGrowthMb: number })
  | (Measured & { kind: 'crash'; name: string; message: string; stack: string })
  | (Measured & { kind: 'hang' })
  | (Measured & { kind: 'memory'; rssMb: number })
  | (Measured & { kind: 'died'; code: number | null; signal: string | null; stderr: string });

/** What a target reports for a list of calls: each call's own outcome (one may crash, the next still runs). */
export type CallOutcome = { call: string; kind: 'ok'; value: unknown } | { call: string; kind: 'rejected' | 'crash'; name: string; message: string; stack?: string };

const CHILD = fileURLToPath(new URL('./fuzz-child.js', import.meta.url));

function rssMbOf(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

export class Sandbox {
  private child: ChildProcess | null = null;
  /** The child whose events count (the one starting or running). */
  private current: ChildProcess | null = null;
  private baselineMb = 0;
  private stderr = '';
  private nextId = 1;
  private onMessage: ((m: Record<string, unknown>) => void) | null = null;
  private onExit: ((code: number | null, signal: string | null) => void) | null = null;
  /** Restarts after a kill or a death (each costs a Node start-up). */
  restarts = 0;
  cases = 0;

  constructor(
    readonly targets: readonly string[],
    readonly limits: SandboxLimits,
  ) {}

  private async start(): Promise<ChildProcess> {
    const child = fork(CHILD, [], {
      execArgv: [`--max-old-space-size=${this.limits.heapMb}`, '--expose-gc'],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.stderr = '';
    child.stderr!.on('data', (b: Buffer) => {
      this.stderr = (this.stderr + b.toString('utf8')).slice(-4000);
    });
    this.current = child;
    // Events of a child that was killed and replaced are ignored (its exit arrives late).
    child.on('message', (m) => {
      if (this.current === child) this.onMessage?.(m as Record<string, unknown>);
    });
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      if (this.current === child) this.onExit?.(code, signal);
    });
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fuzz sandbox did not start in 60 s:\n${this.stderr}`)), 60_000);
      this.onMessage = (m) => {
        if (m.type === 'ready') {
          clearTimeout(timer);
          resolve(m);
        }
      };
      this.onExit = (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`fuzz sandbox exited while starting (code ${code}, signal ${signal}):\n${this.stderr}`));
      };
      child.send({ type: 'warm', targets: this.targets });
    });
    if (ready.error) throw new Error(`fuzz sandbox could not load its targets: ${String(ready.error)}`);
    this.baselineMb = ready.peakRssMb as number;
    this.child = child;
    return child;
  }

  /** The call in flight (one at a time: a property stopped by its time limit may leave one behind). */
  private queue: Promise<unknown> = Promise.resolve();

  /**
   * Runs `target` on `input` in the child under the limits. Calls are serialised: a call's deadline
   * starts when the child is free, not behind an earlier call that fast-check abandoned when it
   * interrupted a property.
   */
  run(target: string, input: unknown): Promise<Outcome> {
    const p = this.queue.then(() => this.runNow(target, input));
    this.queue = p.catch(() => {});
    return p;
  }

  /** Resolves when no call is in flight (one left behind by an interrupted property finishes within its deadline). */
  async idle(): Promise<void> {
    await this.queue;
  }

  private async runNow(target: string, input: unknown): Promise<Outcome> {
    const child = this.child ?? (await this.start());
    this.cases++;
    const id = this.nextId++;
    const t0 = performance.now();
    const ms = (): number => performance.now() - t0;
    const { deadlineMs, memoryMb } = this.limits;
    return new Promise<Outcome>((resolve) => {
      let done = false;
      const finish = (o: Outcome, kill: boolean): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearInterval(poll);
        this.onMessage = null;
        this.onExit = null;
        if (kill) {
          this.child = null;
          this.current = null;
          this.restarts++;
          child.kill('SIGKILL');
        }
        resolve(o);
      };
      const timer = setTimeout(() => finish({ kind: 'hang', ms: ms() }, true), deadlineMs);
      const poll = setInterval(() => {
        const rss = rssMbOf(child.pid!);
        if (rss !== null && rss > this.baselineMb + memoryMb) finish({ kind: 'memory', ms: ms(), rssMb: rss }, true);
      }, 15);
      this.onExit = (code, signal) => {
        this.restarts++;
        finish({ kind: 'died', ms: ms(), code, signal, stderr: this.stderr.slice(-1500) }, false);
      };
      this.onMessage = (m) => {
        if (m.type !== 'result' || m.id !== id) return;
        const childMs = m.ms as number;
        const peak = m.peakRssMb as number;
        if (childMs > deadlineMs) return finish({ kind: 'hang', ms: childMs }, true);
        if (peak > this.baselineMb + memoryMb) return finish({ kind: 'memory', ms: childMs, rssMb: peak }, true);
        const growth = Math.max(0, peak - this.baselineMb);
        if (m.kind === 'ok') finish({ kind: 'ok', ms: childMs, value: m.value, peakGrowthMb: growth }, false);
        else if (m.kind === 'rejected') finish({ kind: 'rejected', ms: childMs, name: m.name as string, message: m.message as string, peakGrowthMb: growth }, false);
        else finish({ kind: 'crash', ms: childMs, name: m.name as string, message: m.message as string, stack: m.stack as string }, false);
      };
      child.send({ type: 'case', id, target, input });
    });
  }

  close(): void {
    const c = this.child;
    this.child = null;
    this.current = null;
    if (c) {
      this.onExit = null;
      c.kill('SIGKILL');
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Checking outcomes.

/** A one-line description of an outcome (for assertion messages). */
export function describe(o: Outcome): string {
  switch (o.kind) {
    case 'ok':
      return `accepted (${o.ms.toFixed(0)} ms)`;
    case 'rejected':
      return `${o.name}: ${o.message}`;
    case 'crash':
      return `CRASH ${o.name}: ${o.message}\n${o.stack}`;
    case 'hang':
      return `HANG: still running after ${o.ms.toFixed(0)} ms (killed)`;
    case 'memory':
      return `MEMORY: resident memory reached ${o.rssMb.toFixed(0)} MiB, over the bound (killed)`;
    case 'died':
      return `DIED (exit code ${o.code}, signal ${o.signal}${/heap out of memory/i.test(o.stderr) ? ', JavaScript heap out of memory' : ''}):\n${o.stderr.split('\n').slice(-8).join('\n')}`;
  }
}

/** Fails unless the sandbox itself came back with a result (no hang, no memory blow-up, no death). */
export function expectFinished(o: Outcome, what: string): asserts o is Extract<Outcome, { kind: 'ok' | 'rejected' | 'crash' }> {
  if (o.kind === 'hang' || o.kind === 'memory' || o.kind === 'died') assert.fail(`${what}: ${describe(o)}`);
}

/**
 * Checks one call's outcome: a crash (anything but a UserError) fails; a rejection must name the file
 * or field (`names`: strings it must contain, any one suffices, or a RegExp).
 */
export function expectNamedOrOk(c: CallOutcome, what: string, names: ReadonlyArray<string> | RegExp): void {
  if (c.kind === 'crash') assert.fail(`${what}: ${c.call} crashed with ${c.name}: ${c.message}\n${c.stack ?? ''}`);
  if (c.kind === 'rejected') {
    const ok = names instanceof RegExp ? names.test(c.message) : names.some((n) => c.message.includes(n));
    if (!ok) assert.fail(`${what}: ${c.call} rejected it, but the message does not name ${names instanceof RegExp ? names : names.map((n) => JSON.stringify(n)).join(' or ')}: ${c.name}: ${c.message}`);
  }
}

/** The call outcomes a multi-call target returned (after expectFinished). */
export function callsOf(o: Outcome, what: string): CallOutcome[] {
  expectFinished(o, what);
  if (o.kind === 'crash') assert.fail(`${what}: the target itself crashed: ${o.name}: ${o.message}\n${o.stack}`);
  if (o.kind === 'rejected') assert.fail(`${what}: the target itself threw ${o.name}: ${o.message}`);
  return o.value as CallOutcome[];
}

// ---------------------------------------------------------------------------------------------
// Coverage: what the generated inputs exercised (printed by the tests, so a generator that only ever
// produces rejected inputs shows).

export class Coverage {
  private readonly counts = new Map<string, number>();
  note(label: string): void {
    this.counts.set(label, (this.counts.get(label) ?? 0) + 1);
  }
  /** Notes `<prefix> <call>: <kind>` for each call. */
  noteCalls(prefix: string, calls: readonly CallOutcome[]): void {
    for (const c of calls) this.note(`${prefix}${c.call}: ${c.kind}`);
  }
  summary(): string {
    return [...this.counts].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k} ×${n}`).join('; ');
  }
  clear(): void {
    this.counts.clear();
  }
}
export const coverage = new Coverage();

// ---------------------------------------------------------------------------------------------
// Case directories.

/** A scratch directory for a fuzz test, with a fresh sub-directory per case (removed after it). */
export class CaseDirs {
  readonly root: string;
  private n = 0;
  constructor(prefix: string) {
    this.root = tempDir(`adabatch-fuzz-${prefix}-`);
  }
  /** Runs fn with a fresh empty directory, removing it afterwards. */
  async with<T>(fn: (dir: string) => Promise<T>): Promise<T> {
    const dir = join(this.root, `case-${++this.n}`);
    mkdirSync(dir);
    try {
      return await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// JSON values and edits, shared by the generators.

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonPath = ReadonlyArray<string | number>;
export type JsonEdit = { op: 'set'; path: JsonPath; value: Json } | { op: 'delete'; path: JsonPath } | { op: 'renameKey'; path: JsonPath; to: string };

/** Applies an edit to a JSON value in place (missing intermediate objects are created); returns the new root. */
export function applyEdit(root: Json, e: JsonEdit): Json {
  if (e.path.length === 0) return e.op === 'set' ? structuredClone(e.value) : root;
  let cur: Json = root;
  for (const key of e.path.slice(0, -1)) {
    if (cur === null || typeof cur !== 'object') return root;
    const obj = cur as Record<string | number, Json>;
    if (obj[key] === undefined || obj[key] === null || typeof obj[key] !== 'object') {
      if (e.op !== 'set') return root;
      obj[key] = {};
    }
    cur = obj[key]!;
  }
  if (cur === null || typeof cur !== 'object') return root;
  const obj = cur as Record<string | number, Json>;
  const last = e.path[e.path.length - 1]!;
  if (e.op === 'set') {
    // Own property even for '__proto__' (as JSON.parse would create it).
    Object.defineProperty(obj, last, { value: structuredClone(e.value), enumerable: true, writable: true, configurable: true });
  } else if (e.op === 'delete') {
    if (Array.isArray(obj) && typeof last === 'number') obj.splice(last, 1);
    else delete obj[last];
  } else if (Object.hasOwn(obj, last) && !Array.isArray(obj)) {
    const v = obj[last]!;
    delete obj[last];
    Object.defineProperty(obj, e.to, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return root;
}

/** Numbers at the edges: zero, negatives, fractions, 2^k ± 1 around int32 / uint32 / 2^53, huge, -0. */
export const extremeNumber: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(0, -0, 1, -1, 0.5, 1.5, -1.5, 2, 3, 7, 8, 255, 256, 1023, 1024, 65535, 65536, 2 ** 24, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 2 ** 63, 2 ** 64, 1e8, 1e12, 1e15, 1e20, 1e300, 1.7976931348623157e308, Number.MIN_VALUE, 1e-300, -1e8, -(2 ** 31), -(2 ** 53)),
  fc.integer({ min: -1000, max: 1000 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

/** Values of every JSON type, weighted towards the awkward ones. */
export const weirdJson: fc.Arbitrary<Json> = fc.oneof(
  { weight: 3, arbitrary: extremeNumber },
  { weight: 2, arbitrary: fc.constantFrom<Json>(null, true, false, '', '0', '1', '-1', '1e999', 'NaN', 'abc', '__proto__', [], {}, [0], [1, 2], [null], { a: 1 }, JSON.parse('{"__proto__": 1}') as Json, [[[]]], ' ') },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json> },
);

/** Object keys / file names that trip up naive code: traversal, prototype names, empty, odd characters. */
export const weirdName: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('', '.', '..', '../x', '../../etc/passwd', 'a/../b', '/abs', 'a/b', '.hidden', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype', '__metadata__', ' ', 'a b', 'ü', '😀', 'x'.repeat(300), '-', 'NUL\u0000', 'new\nline', '\\', 'C:\\x', 'model.safetensors', 'checksums.json'),
  fc.string({ maxLength: 10 }),
);
