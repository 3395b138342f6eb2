/**
 * Which WebGPU adapter a rank opens (docs/gpu.md, "Which GPU"): pure functions from the rank's
 * place on its machine, ADABATCH_WEBGPU_ADAPTER and the adapters Dawn lists to the adapter, so the
 * mapping is tested without several GPUs.
 *
 * What Dawn's Node bindings (the npm package `webgpu`, src/dawn/node/binding/GPU.cpp) allow:
 * - an adapter is chosen only by name: create()'s `adapter=NAME` option makes requestAdapter return
 *   the first adapter, in Dawn's order, whose name (the driver's device name, e.g. "NVIDIA H100 80GB
 *   HBM3") contains NAME. There is no index option and no API that lists adapters or returns a
 *   second one; requestAdapter's powerPreference only reorders discrete before integrated GPUs.
 * - a name that matches nothing rejects requestAdapter with the list ("Available adapters:\n *
 *   backend: 'vulkan', name: '…'"), in the order requestAdapter searches: listAdapters parses it.
 * So adapter k can be selected when no adapter before it has a name containing its name. Identical
 * cards have identical names: only the first of them can be selected from inside a process, and
 * one GPU per rank then needs each rank's process to see only its own GPU (docs/gpu.md).
 */

/** Where this rank sits on its machine: what the automatic choice maps to an adapter. */
export interface AdapterPlacement {
  /** This rank's index among the ranks on its machine. */
  localRank: number;
  /** Ranks on this machine. */
  localRanks: number;
  /** How the local rank was found (for the log). */
  via: string;
}

/** One entry of ADABATCH_WEBGPU_ADAPTER: an index into Dawn's adapter list, or a name. */
export type AdapterSpec = { index: number } | { name: string };

/** What the worker needs to choose the adapter (sent with the init request). */
export interface AdapterSelection extends AdapterPlacement {
  /** ADABATCH_WEBGPU_ADAPTER, parsed; null when unset. */
  override: AdapterSpec[] | null;
}

/** An adapter as Dawn lists it. */
export interface ListedAdapter {
  backend: string;
  name: string;
}

/** The adapter a rank opens, and why. */
export interface AdapterChoice {
  /** Dawn's `adapter=` option, or null for the first adapter Dawn offers. */
  name: string | null;
  /** Its index in Dawn's list (null when the list was not needed: a name was given). */
  index: number | null;
  /** Adapters Dawn listed (null when not listed). */
  count: number | null;
  /** Why this adapter (for the log). */
  reason: string;
  /** Set when the rank does not get the GPU its local rank maps to (it shares another one). */
  warning: string | null;
  /** Ranks of this machine that map to the same adapter, as far as this process can tell. */
  shared: number;
}

export const ADAPTER_VARIABLE = 'ADABATCH_WEBGPU_ADAPTER';

/** Local-rank variables of the launchers group-choice.ts recognises, most specific first. */
const LOCAL_RANK_VARIABLES: ReadonlyArray<[variable: string, via: string]> = [
  ['OMPI_COMM_WORLD_LOCAL_RANK', 'mpirun (Open MPI)'],
  ['MV2_COMM_WORLD_LOCAL_RANK', 'MVAPICH'],
  ['MPI_LOCALRANKID', 'MPICH hydra'],
  ['PMI_LOCAL_RANK', 'PMI'],
];

const intValue = (v: string | undefined): number | null => (v !== undefined && /^\d+$/.test(v.trim()) ? Number(v.trim()) : null);

/**
 * The local rank a launcher gave this process, or null. SLURM_LOCALID counts only inside a step
 * srun launched (a batch script's shell has it too, as 0, and passes it to mpirun's ranks).
 */
export function localRankFromEnv(env: NodeJS.ProcessEnv = process.env): { localRank: number; via: string } | null {
  for (const [variable, via] of LOCAL_RANK_VARIABLES) {
    const r = intValue(env[variable]);
    if (r !== null) return { localRank: r, via: `${variable} (${via})` };
  }
  const slurm = intValue(env.SLURM_LOCALID);
  if (slurm !== null && env.SLURM_STEP_NUM_TASKS) return { localRank: slurm, via: 'SLURM_LOCALID (srun)' };
  return null;
}

/**
 * This rank's place on its machine: thread ranks (`--nproc N`) are all on this machine, in rank
 * order; an MPI rank's local rank comes from its launcher's variables, else is assumed to be its
 * rank modulo the ranks sharing this machine (ranks placed in blocks, the launchers' default).
 */
export function adapterPlacement(group: { kind: 'local' | 'threads' | 'mpi'; rank: number; size: number; localSize: number } | null, env: NodeJS.ProcessEnv = process.env): AdapterPlacement {
  if (!group || group.kind === 'local' || group.size <= 1) return { localRank: 0, localRanks: 1, via: 'one rank' };
  if (group.kind === 'threads') return { localRank: group.rank, localRanks: group.size, via: 'thread ranks of this process' };
  const localRanks = Math.max(1, group.localSize);
  const found = localRankFromEnv(env);
  if (found) return { localRank: found.localRank, localRanks, via: found.via };
  return { localRank: group.rank % localRanks, localRanks, via: `rank ${group.rank} modulo the ${localRanks} ranks on this machine (no launcher variable names the local rank)` };
}

/**
 * ADABATCH_WEBGPU_ADAPTER: unset or empty → null (automatic); indices separated by commas ("1",
 * "0,1,2,3") → local rank r uses the (r mod n)-th; anything else → one adapter name (a part of it)
 * for every rank, exactly as Dawn's `adapter=` option takes it (names may hold commas).
 */
export function parseAdapterOverride(value: string | undefined): AdapterSpec[] | null {
  if (value === undefined || value.trim() === '') return null;
  if (/^[\d\s,]+$/.test(value)) {
    const parts = value.split(',').map((s) => s.trim());
    if (parts.some((s) => !/^\d+$/.test(s))) throw new Error(`${ADAPTER_VARIABLE}='${value}': a list of adapter indices is numbers separated by commas, e.g. 0,1`);
    return parts.map((s) => ({ index: Number(s) }));
  }
  return [{ name: value }];
}

/** The spec this local rank uses, or null (automatic). */
function specFor(sel: AdapterSelection): AdapterSpec | null {
  return sel.override ? sel.override[sel.localRank % sel.override.length]! : null;
}

/** Whether choosing needs Dawn's adapter list (an index is asked for, or several ranks share this machine). */
export function needsAdapterList(sel: AdapterSelection): boolean {
  const spec = specFor(sel);
  return spec ? 'index' in spec : sel.localRanks > 1;
}

/** The adapters in Dawn's message for a name that matched nothing; null when the message has no list. */
export function parseAdapterList(message: string): ListedAdapter[] | null {
  const at = message.indexOf('Available adapters:');
  if (at < 0) return null;
  const list: ListedAdapter[] = [];
  for (const line of message.slice(at).split('\n').slice(1)) {
    const m = /^\s*\* backend: '([^']*)', name: '(.*)'\s*$/.exec(line);
    if (m) list.push({ backend: m[1]!, name: m[2]! });
  }
  return list;
}

/** CPU implementations of Vulkan (lavapipe, SwiftShader): not given to ranks while a GPU is listed. */
export function isSoftwareAdapter(name: string): boolean {
  return /llvmpipe|lavapipe|swiftshader/i.test(name);
}

/** The index Dawn's `adapter=` option with adapter k's name opens: the first whose name contains it. */
export function openedByName(names: readonly string[], k: number): number {
  return names.findIndex((n) => n.includes(names[k]!));
}

const describeList = (list: readonly ListedAdapter[]): string => list.map((a, i) => `${i}: '${a.name}' (${a.backend})`).join(', ');

/** How a user gives each rank its own GPU when Dawn cannot tell the cards apart (docs/gpu.md). */
const PIN_ADVICE = 'to give each rank its own GPU, start one process per rank (mpirun/srun) and let each process see only its GPU: DRI_PRIME=pci-DDDD_BB_DD_F! (Mesa\'s device-select layer, by PCI address) or the container\'s or scheduler\'s device isolation (docs/gpu.md, "Which GPU")';

/**
 * The adapter of local rank `sel.localRank`. `list` is Dawn's adapter list when needsAdapterList
 * said it is needed (null when Dawn gave none). Throws when an index is asked for that does not
 * exist or cannot be selected by name.
 */
export function chooseAdapter(sel: AdapterSelection, list: readonly ListedAdapter[] | null): AdapterChoice {
  const spec = specFor(sel);
  if (spec && 'name' in spec) {
    return { name: spec.name, index: null, count: list?.length ?? null, reason: `${ADAPTER_VARIABLE}='${spec.name}' (the first adapter whose name contains it)`, warning: null, shared: sel.localRanks };
  }
  const first = (reason: string): AdapterChoice => ({ name: null, index: list && list.length > 0 ? 0 : null, count: list?.length ?? null, reason, warning: null, shared: sel.localRanks });
  if (!list) {
    if (spec) throw new Error(`${ADAPTER_VARIABLE} asks for adapter ${spec.index}, but Dawn did not list its adapters`);
    return first(sel.localRanks > 1 ? 'the first adapter WebGPU offers (Dawn did not list its adapters)' : 'the first adapter WebGPU offers');
  }
  if (list.length === 0) return first('no adapter is listed');
  const names = list.map((a) => a.name);
  if (spec) {
    const k = spec.index;
    if (k >= list.length) throw new Error(`${ADAPTER_VARIABLE} asks for adapter ${k} for local rank ${sel.localRank}, but there are ${list.length}: ${describeList(list)}`);
    const opened = openedByName(names, k);
    if (opened !== k) {
      throw new Error(`${ADAPTER_VARIABLE} asks for adapter ${k} ('${names[k]}') for local rank ${sel.localRank}, but Dawn's Node bindings select adapters only by name and adapter ${opened} ('${names[opened]}') comes first with that name; ${PIN_ADVICE}`);
    }
    const specs = sel.override!;
    const shared = countLocalRanks(sel, (r) => specs[r % specs.length]!, (s) => 'index' in s && s.index === k);
    return { name: k === 0 ? null : names[k]!, index: k, count: list.length, reason: `${ADAPTER_VARIABLE}=${specs.map((s) => ('index' in s ? s.index : s.name)).join(',')}: adapter ${k} for local rank ${sel.localRank}`, warning: null, shared };
  }
  // Automatic: local rank r → the (r mod n)-th of the n GPUs (software adapters only when no GPU is listed).
  const gpus = list.map((_, i) => i).filter((i) => !isSoftwareAdapter(names[i]!));
  const candidates = gpus.length > 0 ? gpus : list.map((_, i) => i);
  const target = (r: number): number => candidates[r % candidates.length]!;
  const k = target(sel.localRank);
  const opened = openedByName(names, k);
  const shared = countLocalRanks(sel, (r) => openedByName(names, target(r)), (o) => o === opened);
  const how = `local rank ${sel.localRank} of ${sel.localRanks} (${sel.via}) mod ${candidates.length} ${gpus.length > 0 ? 'GPU' : 'software'} adapter(s)`;
  if (opened === k) return { name: k === 0 ? null : names[k]!, index: k, count: list.length, reason: how, warning: null, shared };
  return {
    name: opened === 0 ? null : names[opened]!,
    index: opened,
    count: list.length,
    reason: `${how}, opened as adapter ${opened}`,
    warning: `local rank ${sel.localRank} maps to adapter ${k} ('${names[k]}'), but Dawn's Node bindings select adapters only by name and adapter ${opened} ('${names[opened]}') comes first with that name: this rank uses adapter ${opened}, shared by ${shared} local rank(s); ${PIN_ADVICE}`,
    shared,
  };
}

/** Local ranks r whose value f(r) satisfies `same`. */
function countLocalRanks<T>(sel: AdapterPlacement, f: (r: number) => T, same: (v: T) => boolean): number {
  let n = 0;
  for (let r = 0; r < sel.localRanks; r++) if (same(f(r))) n++;
  return n;
}
