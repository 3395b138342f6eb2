/**
 * The fuzz tests, defined once for both runs: test/fuzz-*.test.ts call these with mode 'bounded'
 * (fixed seeds, a few dozen inputs per property, part of `npm test`) and test/fuzz-*.slow.test.ts with
 * mode 'slow' (thousands of inputs, a random seed printed for replay, `npm run test:slow`).
 *
 * The slow run adds, per failure class (test/helpers/fuzz.ts): for each open class in KNOWN a `todo`
 * property made of that class only (it reports whether the failure is still there without failing
 * the run), and for each class in FIXED a regression property.
 */
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { BOUNDED_LIMITS, CaseDirs, type Classes, coverage, FIXED, fuzzSettings, KNOWN, type Mode, onlyKnown, runProperty, Sandbox, SLOW_LIMITS, type TestContextLike, WITHOUT_KNOWN } from './fuzz.js';
import { type CkBase, checkpointCase, ckClassRecipe, ckRecipe, writeCheckpointBases } from './fuzz-checkpoint.js';
import { hfClassRecipe, hfConfigCase, hfRecipe, loadYaml, trainClassRecipe, trainConfigCase, trainRecipe, validTrainRecipe } from './fuzz-config.js';
import { safetensorsCase, stClassRecipe, stRecipe } from './fuzz-safetensors.js';
import { engineCase, engineCaseRun, tokClassRecipe, tokenizerCase, tokRecipe } from './fuzz-tokenizer.js';

type Runs = { bounded: number; slow: number };
type Secs = { bounded: number; slow: number };

interface Suite {
  mode: Mode;
  file: string;
  sandbox: Sandbox;
}

function suite(mode: Mode, file: string, targets: string[]): Suite {
  const sandbox = new Sandbox(targets, mode === 'bounded' ? BOUNDED_LIMITS : SLOW_LIMITS);
  after(() => sandbox.close());
  return { mode, file, sandbox };
}

/** One fuzz test: settings, the property, then what the inputs exercised. */
function fuzzTest<T>(s: Suite, name: string, runs: Runs, secs: Secs, arb: () => fc.Arbitrary<T>, body: (input: T) => Promise<void>, opts: { todo?: string } = {}): void {
  // node:test's own timeout: the property's time limit, plus shrinking and start-up.
  const timeout = 1000 * (3 * secs[s.mode] + 60);
  test(name, { timeout, ...(opts.todo ? { todo: opts.todo } : {}) }, async (t) => {
    await s.sandbox.idle();
    coverage.clear();
    const settings = fuzzSettings(s.mode, name, runs, secs);
    const { numRuns } = await runProperty(t as unknown as TestContextLike, s.file, settings, fc.asyncProperty(arb(), body));
    t.diagnostic(`${numRuns} inputs: ${coverage.summary()}`);
  });
}

/** The slow run's per-class properties: todo for open classes, regressions for fixed ones. */
function classTests<T>(s: Suite, domain: string, recipe: (id: string) => fc.Arbitrary<T> | null, body: (input: T, c: Classes) => Promise<void>): void {
  if (s.mode !== 'slow') return;
  for (const [id, what] of [...Object.entries(KNOWN), ...Object.entries(FIXED)]) {
    const arb = recipe(id);
    if (arb === null) continue;
    const open = Object.hasOwn(KNOWN, id);
    const c = onlyKnown(id);
    fuzzTest(s, `fuzz ${domain}: ${open ? 'open failure' : 'fixed failure stays fixed'}: ${id}`, { bounded: 0, slow: 60 }, { bounded: 0, slow: 60 }, () => arb, (input) => body(input, c), open ? { todo: `known open failure: ${what}` } : {});
  }
}

/** Both runs leave the open classes out of their main properties (the slow run checks them one by one). */
const MAIN: Classes = WITHOUT_KNOWN;

// ---------------------------------------------------------------------------------------------

/** safetensors files, checkpoint directories, sharded checkpoints. */
export function ioFuzzTests(mode: Mode, file: string): void {
  const s = suite(mode, file, ['safetensors', 'checkpoint']);
  const dirs = new CaseDirs('io');
  const c = MAIN;
  let bases: CkBase[] = [];
  before(async () => {
    bases = await writeCheckpointBases(new CaseDirs('io-bases').root);
  });

  fuzzTest(s, 'fuzz: safetensors readers accept exactly the valid files, return their exact bytes and SHA-256, and otherwise throw a SafetensorsError naming the file', { bounded: 150, slow: 6000 }, { bounded: 3, slow: 240 }, () => stRecipe(c), (r) => safetensorsCase(s.sandbox, dirs, r));
  fuzzTest(s, 'fuzz: checkpoint readers (consolidated and sharded, 1–3 ranks) load exactly what was written or throw a UserError naming the checkpoint, within time and memory bounds', { bounded: 60, slow: 3000 }, { bounded: 4, slow: 300 }, () => ckRecipe(c, bases.length), (r) => checkpointCase(s.sandbox, dirs, bases, r, c));
  classTests(s, 'safetensors', stClassRecipe, (r) => safetensorsCase(s.sandbox, dirs, r));
  checkpointClassTests(s, dirs, () => bases);
}

/** The checkpoint class tests: their recipes need the bases, written by `before`, so each is made when its test runs. */
function checkpointClassTests(s: Suite, dirs: CaseDirs, bases: () => CkBase[]): void {
  if (s.mode !== 'slow') return;
  for (const [id, what] of [...Object.entries(KNOWN), ...Object.entries(FIXED)]) {
    if (ckClassRecipe(id, [{ name: 'x', layout: 'sharded', ranks: 2, dir: '', files: [], model: '', optimizer: '' }]) === null) continue;
    const open = Object.hasOwn(KNOWN, id);
    fuzzTest(s, `fuzz checkpoint: ${open ? 'open failure' : 'fixed failure stays fixed'}: ${id}`, { bounded: 0, slow: 60 }, { bounded: 0, slow: 60 }, () => ckClassRecipe(id, bases())!, (r) => checkpointCase(s.sandbox, dirs, bases(), r, onlyKnown(id)), open ? { todo: `known open failure: ${what}` } : {});
  }
}

/** tokenizer.json files, and the two engines that run Split patterns. */
export function tokenizerFuzzTests(mode: Mode, file: string): void {
  const s = suite(mode, file, ['tokenizer', 'pattern-engines']);
  const dirs = new CaseDirs('tok');
  const c = MAIN;
  fuzzTest(s, 'fuzz: tokenizer.json loads or is refused naming the file, in bounded time and memory; a loaded tokenizer encodes inside its vocabulary and round-trips text', { bounded: 80, slow: 4000 }, { bounded: 3, slow: 300 }, () => tokRecipe(c), (r) => tokenizerCase(s.sandbox, dirs, r, c));
  fuzzTest(s, "fuzz: patternFinder's linear engine cuts texts into the same pieces as V8's RegExp", { bounded: 50, slow: 4000 }, { bounded: 2, slow: 180 }, () => engineCase, (e) => engineCaseRun(s.sandbox, e));
  classTests(s, 'tokenizer', tokClassRecipe, (r, cc) => tokenizerCase(s.sandbox, dirs, r, cc));
}

/** config.json and training configs. */
export function configFuzzTests(mode: Mode, file: string): void {
  const s = suite(mode, file, ['hf-config', 'train-config']);
  const dirs = new CaseDirs('cfg');
  const c = MAIN;
  before(loadYaml);
  fuzzTest(s, 'fuzz: config.json is accepted (and then its layout and RoPE tables build in bounded time and memory) or refused naming the file and field', { bounded: 100, slow: 6000 }, { bounded: 2, slow: 180 }, () => hfRecipe(), (r) => hfConfigCase(s.sandbox, dirs, r, c));
  fuzzTest(s, 'fuzz: training configs from random --set overrides and files are accepted or refused with a UserError naming the field; trainConfigSchema.safeParse never throws', { bounded: 100, slow: 6000 }, { bounded: 2, slow: 180 }, () => trainRecipe(c), (r) => trainConfigCase(s.sandbox, dirs, r));
  // A regression check: a config without a `data` section was refused for a while (found by this property).
  fuzzTest(s, 'fuzz: training configs made of valid --set overrides (including none) are accepted', { bounded: 20, slow: 500 }, { bounded: 1, slow: 60 }, () => validTrainRecipe, (r) => trainConfigCase(s.sandbox, dirs, r, true));
  classTests(s, 'config.json', hfClassRecipe, (r, cc) => hfConfigCase(s.sandbox, dirs, r, cc));
  classTests(s, 'training config', trainClassRecipe, (r) => trainConfigCase(s.sandbox, dirs, r));
}

