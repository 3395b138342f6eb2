/**
 * What the fuzz sandbox runs (in its child process, test/helpers/fuzz-child.ts): each target takes a
 * plain input (paths, texts) and calls the code under test, returning one outcome per call so that a
 * crash in one call does not hide another, and summaries (digests, sizes) that the property in the
 * parent checks. Modules under test are imported lazily (a module another engineer is editing breaks
 * only its own target).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { CallOutcome } from './fuzz.js';

type Target = { warm(): Promise<unknown>; run(input: unknown): Promise<unknown> };

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** A digest of named arrays, independent of map order. */
export function digestArrays(m: ReadonlyMap<string, ArrayBufferView> | null): string | null {
  if (m === null) return null;
  const h = createHash('sha256');
  for (const name of [...m.keys()].sort()) {
    const a = m.get(name)!;
    h.update(`${name}\u0000${a.constructor.name}\u0000${a.byteLength}\u0000`);
    h.update(bytesOf(a));
  }
  return h.digest('hex');
}

/** Runs the calls in order; each one's outcome is recorded, a UserError is a rejection, anything else a crash. */
async function calls(list: Array<[string, () => unknown]>, isUserError: (e: unknown) => boolean): Promise<CallOutcome[]> {
  const out: CallOutcome[] = [];
  for (const [call, fn] of list) {
    try {
      out.push({ call, kind: 'ok', value: await fn() });
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      out.push({ call, kind: isUserError(e) ? 'rejected' : 'crash', name: err.constructor?.name ?? err.name, message: err.message, stack: err.stack ?? '' });
    }
  }
  return out;
}

const errors = () => import('../../src/util/errors.js');
const isUserErrorOf = (m: Awaited<ReturnType<typeof errors>>) => (e: unknown): boolean => e instanceof m.UserError;

const safetensors: Target = {
  warm: () => Promise.all([errors(), import('../../src/io/safetensors.js')]),
  async run(input) {
    const { path, expect } = input as { path: string; expect: { size: number; sha256: string } };
    const st = await import('../../src/io/safetensors.js');
    const summary = (r: ReturnType<typeof st.readSafetensorsFile>) => ({
      size: r.size,
      sha256: r.sha256,
      metadata: r.metadata,
      infos: [...r.infos].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, begin: t.begin, end: t.end })),
      tensors: [...r.tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, length: t.bytes.byteLength, sha256: sha(t.bytes) })),
    });
    return calls(
      [
        ['readSafetensorsFile', () => summary(st.readSafetensorsFile(path))],
        ['readSafetensorsFile with the true size and sha256', () => st.readSafetensorsFile(path, { expect }).sha256],
        ['readSafetensorsFile selecting every other tensor', () => {
          let i = 0;
          const r = st.readSafetensorsFile(path, { select: () => i++ % 2 === 0 });
          return { sha256: r.sha256, kept: [...r.tensors].map(([name, t]) => ({ name, sha256: sha(t.bytes) })) };
        }],
        ['SafetensorsReader', () => {
          const r = st.SafetensorsReader.open(path);
          try {
            return r.names().map((name) => {
              const info = r.info(name);
              const bytes = r.readBytes(name);
              if (st.isFloatDType(info.dtype)) r.readFloat32(name);
              if (info.dtype === 'I32' || info.dtype === 'I64') r.readInt32(name);
              return { name, sha256: sha(bytes) };
            });
          } finally {
            r.close();
          }
        }],
      ],
      isUserErrorOf(await errors()),
    );
  },
};

const checkpoint: Target = {
  warm: () => Promise.all([errors(), import('../../src/io/checkpoint.js'), import('../../src/io/hf.js')]),
  async run(input) {
    const { dir } = input as { dir: string };
    const ck = await import('../../src/io/checkpoint.js');
    const read = (optimizer: boolean) => () => {
      const d = ck.readCheckpoint(dir, { optimizer });
      return { layout: d.manifest.layout, model: digestArrays(d.model), optimizer: digestArrays(d.optimizer), vocab: d.config.vocab };
    };
    const hf = await import('../../src/io/hf.js');
    const parent = dirname(dir);
    const quiet = { onWarning: (): void => {} };
    return calls(
      [
        ['readManifest', () => ck.readManifest(dir).layout],
        ['verifyCheckpoint', () => ck.verifyCheckpoint(dir).layout],
        ['verifyCheckpoint({optimizer: false})', () => ck.verifyCheckpoint(dir, { optimizer: false }).layout],
        ['readCheckpoint', read(true)],
        ['readCheckpoint({optimizer: false})', read(false)],
        // The parent holds only this checkpoint: what --resume and `checkpoint list` see.
        ['listCheckpoints(parent)', () => ck.listCheckpoints(parent).map((e) => ({ name: e.name, problem: e.problem !== null }))],
        ['latestValidCheckpoint(parent)', () => ck.latestValidCheckpoint(parent, quiet)?.name ?? null],
        ['readLatestCheckpoint(parent)', () => {
          const r = ck.readLatestCheckpoint(parent, quiet);
          return r === null ? null : { name: r.entry.name, model: digestArrays(r.data.model), optimizer: digestArrays(r.data.optimizer) };
        }],
        // `eval --ckpt` / `generate` / init_from: our checkpoint, or (no manifest) a Hugging Face directory.
        ['loadModelDir', () => {
          const m = hf.loadModelDir(dir);
          return { kind: m.kind, model: digestArrays(m.tensors) };
        }],
      ],
      isUserErrorOf(await errors()),
    );
  },
};

const tokenizer: Target = {
  warm: () => Promise.all([errors(), import('../../src/data/tokenizer.js')]),
  async run(input) {
    const { path, texts, ids } = input as { path: string; texts: string[]; ids?: number[] };
    const { loadTokenizer } = await import('../../src/data/tokenizer.js');
    const isUser = isUserErrorOf(await errors());
    let tok: ReturnType<typeof loadTokenizer> | null = null;
    const list: Array<[string, () => unknown]> = [
      ['loadTokenizer', () => {
        tok = loadTokenizer(path);
        return { vocabSize: tok.vocabSize, bos: tok.bos, eos: tok.eos };
      }],
    ];
    const first = await calls(list, isUser);
    if (first[0]!.kind !== 'ok') return first;
    const t = tok!;
    const rest = await calls(
      [
        ...(ids ? ([['decode of arbitrary ids', () => t.decode(ids)]] as Array<[string, () => unknown]>) : []),
        ...texts.flatMap((text, i): Array<[string, () => unknown]> => [
        [`encode/decode text ${i}`, () => {
          const ids = t.encode(text);
          return { ids, decoded: t.decode(ids) };
        }],
        [`encode/decode text ${i} with allowSpecial, bos, eos`, () => {
          const ids = t.encode(text, { allowSpecial: true, bos: true, eos: true });
          return { ids, decoded: t.decode(ids), bosText: t.decode([t.bos]), eosText: t.decode([t.eos]) };
        }],
        ]),
      ],
      isUser,
    );
    return [...first, ...rest];
  },
};

const hfConfig: Target = {
  warm: () => Promise.all([errors(), import('../../src/io/hf-config.js'), import('../../src/model/rope.js'), import('../../src/model/llama.js')]),
  async run(input) {
    const { text, file } = input as { text: string; file: string };
    const hf = await import('../../src/io/hf-config.js');
    const { ropeTables } = await import('../../src/model/rope.js');
    // The model's own size check, where the code has one (it runs before anything is allocated).
    const llama = (await import('../../src/model/llama.js')) as unknown as { checkModelSize?: (c: unknown) => void };
    const isUser = isUserErrorOf(await errors());
    let config: ReturnType<typeof hf.modelConfigFromHf> | null = null;
    const first = await calls(
      [['modelConfigFromHf', () => {
        const notes: string[] = [];
        config = hf.modelConfigFromHf(hf.parseHfConfigText(text, file), { file, notes });
        return { config, notes: notes.length };
      }]],
      isUser,
    );
    if (first[0]!.kind !== 'ok') return first;
    const c = config!;
    // What every consumer does next: the checkpoint and Hugging Face readers enumerate the tensors
    // (the layout), and building the model computes its RoPE tables.
    const rest = await calls(
      [
        ['expectedModelTensors (the layout every reader builds)', () => hf.expectedModelTensors(c).length],
        ['building the model: size check, then ropeTables', () => {
          const entries = (c.seq_len * c.d_model) / c.n_heads / 2;
          if (llama.checkModelSize) {
            llama.checkModelSize(c);
            // Accepted by the size check: a legitimately large table (2^22 entries take ~0.5 s) is
            // not built in the sandbox.
            if (entries > 2 ** 22) return `not built here (${entries} entries per table)`;
          }
          return ropeTables(c.seq_len, c.d_model / c.n_heads, c.rope_theta).cos.length;
        }],
      ],
      isUser,
    );
    return [...first, ...rest];
  },
};

const trainConfig: Target = {
  warm: () => Promise.all([errors(), import('../../src/train/config.js'), import('../../src/train/resume.js'), import('../../src/model/config.js'), import('yaml')]),
  async run(input) {
    const { file, overrides, raw } = input as { file?: string; overrides: string[]; raw?: unknown };
    const tc = await import('../../src/train/config.js');
    const resume = await import('../../src/train/resume.js');
    const YAML = (await import('yaml')).default;
    let loaded: Record<string, unknown> | null = null;
    // The config itself goes back (structured clone: a YAML alias may have made it circular).
    const list: Array<[string, () => unknown]> = [['loadTrainConfig', () => (loaded = tc.loadTrainConfig(file, overrides) as Record<string, unknown>)]];
    // What a run does with an accepted config: config.yaml in the run directory (run.ts), the config in
    // each checkpoint's trainer state (JSON), and --resume reading config.yaml back (resume.ts).
    // A run resolves the model section (run.ts resolveModel: modelConfig(preset, the other keys))
    // before it writes anything; only a config that passes it reaches config.yaml.
    const { modelConfig } = await import('../../src/model/config.js');
    let modelOk = false;
    list.push(['modelConfig(model section), as a run resolves it', () => {
      if (loaded === null) return 'not accepted';
      const { preset, ...rest } = loaded.model as { preset: string };
      modelConfig(preset, rest);
      modelOk = true;
      return 'ok';
    }]);
    list.push(['config.yaml and --resume round trip', () => {
      if (loaded === null || !modelOk) return null;
      const runDir = mkdtempSync(join(tmpdir(), 'adabatch-fuzz-run-'));
      try {
        const resolved = { ...loaded, run_dir: runDir };
        JSON.stringify(resolved);
        writeFileSync(join(runDir, 'config.yaml'), YAML.stringify(resolved));
        const back = resume.loadResumeConfig(runDir, undefined, []);
        return resume.diffPaths(resolved, back).map((d) => d.path);
      } finally {
        rmSync(runDir, { recursive: true, force: true });
      }
    }]);
    if (raw !== undefined) list.push(['trainConfigSchema.safeParse (must never throw)', () => tc.trainConfigSchema.safeParse(raw).success]);
    return calls(list, isUserErrorOf(await errors()));
  },
};

/** The pieces each engine of patternFinder cuts the texts into (as Tokenizer.splitStage walks them). */
const patternEngines: Target = {
  warm: () => Promise.all([errors(), import('../../src/data/tokenizer-json.js')]),
  async run(input) {
    const { pattern, texts } = input as { pattern: string; texts: string[] };
    const tj = (await import('../../src/data/tokenizer-json.js')) as unknown as {
      onigurumaToJs(p: string): string;
      patternFinder?(source: string, engine?: 'native' | 'linear'): { find(text: string, from: number): boolean; start: number; end: number };
    };
    const cut = (engine: 'native' | 'linear') => (): Array<Array<[number, number]>> => {
      if (!tj.patternFinder) throw new Error('src/data/tokenizer-json.ts has no patternFinder');
      const f = tj.patternFinder(tj.onigurumaToJs(pattern), engine);
      return texts.map((text) => {
        const pieces: Array<[number, number]> = [];
        let at = 0;
        while (at <= text.length && f.find(text, at)) {
          if (f.end === f.start) {
            at = f.end + ((text.codePointAt(f.end) ?? 0) > 0xffff ? 2 : 1);
            continue;
          }
          pieces.push([f.start, f.end]);
          at = f.end;
        }
        return pieces;
      });
    };
    return calls(
      [
        ['native', cut('native')],
        ['linear', cut('linear')],
      ],
      isUserErrorOf(await errors()),
    );
  },
};

export const TARGETS = { safetensors, checkpoint, tokenizer, 'pattern-engines': patternEngines, 'hf-config': hfConfig, 'train-config': trainConfig } satisfies Record<string, Target>;
export type TargetName = keyof typeof TARGETS;
