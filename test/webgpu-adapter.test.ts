/**
 * Which GPU a rank opens (src/backend/webgpu/adapter.ts): the pure mapping from the launcher's
 * environment to the local rank, and from the local rank, ADABATCH_WEBGPU_ADAPTER and Dawn's
 * adapter list to the adapter; then the same selection against the real Dawn on lavapipe (one
 * adapter here: several ranks share it).
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { adapterPlacement, chooseAdapter, isSoftwareAdapter, localRankFromEnv, needsAdapterList, openedByName, parseAdapterList, parseAdapterOverride, type AdapterSelection, type ListedAdapter } from '../src/backend/webgpu/adapter.js';
import { WebGpuBackend } from '../src/backend/webgpu/index.js';
import { openTestDevice } from './helpers/webgpu-device.js';

const vk = (...names: string[]): ListedAdapter[] => names.map((name) => ({ backend: 'vulkan', name }));
const sel = (localRank: number, localRanks: number, override: string | undefined = undefined): AdapterSelection => ({ localRank, localRanks, via: 'test', override: parseAdapterOverride(override) });

test('the local rank comes from the launcher that started the process', () => {
  assert.deepEqual(localRankFromEnv({ OMPI_COMM_WORLD_LOCAL_RANK: '3' }), { localRank: 3, via: 'OMPI_COMM_WORLD_LOCAL_RANK (mpirun (Open MPI))' });
  assert.equal(localRankFromEnv({ MPI_LOCALRANKID: '1' })?.localRank, 1);
  assert.equal(localRankFromEnv({ MV2_COMM_WORLD_LOCAL_RANK: '2' })?.localRank, 2);
  assert.equal(localRankFromEnv({ PMI_LOCAL_RANK: '5' })?.localRank, 5);
  assert.deepEqual(localRankFromEnv({ SLURM_LOCALID: '2', SLURM_STEP_NUM_TASKS: '8', SLURM_PROCID: '6' }), { localRank: 2, via: 'SLURM_LOCALID (srun)' });
  // A batch script's shell has SLURM_LOCALID=0 and passes it to mpirun's ranks: mpirun's own variable wins.
  assert.equal(localRankFromEnv({ SLURM_LOCALID: '0', SLURM_STEP_NUM_TASKS: '1', OMPI_COMM_WORLD_LOCAL_RANK: '1' })?.localRank, 1);
  // SLURM_LOCALID outside a step srun launched does not count.
  assert.equal(localRankFromEnv({ SLURM_LOCALID: '0' }), null);
  assert.equal(localRankFromEnv({}), null);
  assert.equal(localRankFromEnv({ OMPI_COMM_WORLD_LOCAL_RANK: 'x' }), null);
});

test('placement: thread ranks are local ranks in order; MPI ranks use the launcher, else rank mod the ranks on the machine', () => {
  assert.deepEqual(adapterPlacement(null, {}), { localRank: 0, localRanks: 1, via: 'one rank' });
  assert.deepEqual(adapterPlacement({ kind: 'local', rank: 0, size: 1, localSize: 1 }, { OMPI_COMM_WORLD_LOCAL_RANK: '3' }), { localRank: 0, localRanks: 1, via: 'one rank' });
  assert.deepEqual(adapterPlacement({ kind: 'threads', rank: 2, size: 4, localSize: 4 }, {}), { localRank: 2, localRanks: 4, via: 'thread ranks of this process' });
  const mpi = adapterPlacement({ kind: 'mpi', rank: 5, size: 8, localSize: 4 }, { OMPI_COMM_WORLD_LOCAL_RANK: '1' });
  assert.equal(mpi.localRank, 1);
  assert.equal(mpi.localRanks, 4);
  const guessed = adapterPlacement({ kind: 'mpi', rank: 6, size: 8, localSize: 4 }, {});
  assert.equal(guessed.localRank, 2);
  assert.match(guessed.via, /rank 6 modulo the 4 ranks on this machine/);
});

test('ADABATCH_WEBGPU_ADAPTER: indices (one, or one per local rank) or one name, commas and all', () => {
  assert.equal(parseAdapterOverride(undefined), null);
  assert.equal(parseAdapterOverride(' '), null);
  assert.deepEqual(parseAdapterOverride('1'), [{ index: 1 }]);
  assert.deepEqual(parseAdapterOverride('0, 1,2'), [{ index: 0 }, { index: 1 }, { index: 2 }]);
  assert.deepEqual(parseAdapterOverride('NVIDIA'), [{ name: 'NVIDIA' }]);
  assert.deepEqual(parseAdapterOverride('llvmpipe (LLVM 15.0.6, 256 bits)'), [{ name: 'llvmpipe (LLVM 15.0.6, 256 bits)' }]);
  assert.throws(() => parseAdapterOverride('0,,1'), /ADABATCH_WEBGPU_ADAPTER='0,,1': a list of adapter indices is numbers separated by commas/);
});

test("Dawn's list of adapters is read from its answer to a name that matches nothing", () => {
  // As dawn.node (webgpu 0.6.2) answers on a machine with lavapipe.
  assert.deepEqual(parseAdapterList("no suitable backends found\nAvailable adapters:\n * backend: 'vulkan', name: 'llvmpipe (LLVM 15.0.6, 256 bits)'"), vk('llvmpipe (LLVM 15.0.6, 256 bits)'));
  assert.deepEqual(parseAdapterList("no adapter  with name 'x' found\nAvailable adapters:\n * backend: 'vulkan', name: 'NVIDIA H100 80GB HBM3'\n * backend: 'vulkan', name: 'NVIDIA H100 80GB HBM3'"), vk('NVIDIA H100 80GB HBM3', 'NVIDIA H100 80GB HBM3'));
  assert.deepEqual(parseAdapterList('no suitable backends found\nAvailable adapters:'), []);
  assert.equal(parseAdapterList('unrecognised backend'), null);
  assert.ok(isSoftwareAdapter('llvmpipe (LLVM 15.0.6, 256 bits)') && isSoftwareAdapter('SwiftShader Device (Subzero)') && !isSoftwareAdapter('AMD Radeon RX 7900 XTX (RADV NAVI31)'));
});

test('the list is needed only to map several local ranks, or for an index', () => {
  assert.equal(needsAdapterList(sel(0, 1)), false);
  assert.equal(needsAdapterList(sel(0, 2)), true);
  assert.equal(needsAdapterList(sel(1, 2, 'NVIDIA')), false);
  assert.equal(needsAdapterList(sel(0, 1, '1')), true);
});

test('distinct GPUs: local rank r opens GPU r mod n, by its name (the first is Dawn\'s default)', () => {
  const list = vk('NVIDIA GeForce RTX 4090', 'AMD Radeon RX 7900 XTX (RADV NAVI31)');
  const r0 = chooseAdapter(sel(0, 2), list);
  assert.deepEqual([r0.name, r0.index, r0.count, r0.warning, r0.shared], [null, 0, 2, null, 1]);
  const r1 = chooseAdapter(sel(1, 2), list);
  assert.deepEqual([r1.name, r1.index, r1.warning, r1.shared], ['AMD Radeon RX 7900 XTX (RADV NAVI31)', 1, null, 1]);
  assert.equal(r1.reason, 'local rank 1 of 2 (test) mod 2 GPU adapter(s)');
  // More ranks than GPUs: they take turns, two per GPU.
  const r3 = chooseAdapter(sel(3, 4), list);
  assert.deepEqual([r3.index, r3.shared], [1, 2]);
});

test('software adapters are given to ranks only when no GPU is listed', () => {
  const list = vk('NVIDIA A100-SXM4-80GB', 'llvmpipe (LLVM 15.0.6, 256 bits)', 'NVIDIA L4');
  assert.equal(chooseAdapter(sel(1, 2), list).index, 2);
  assert.equal(chooseAdapter(sel(2, 3), list).index, 0);
  const cpuOnly = vk('llvmpipe (LLVM 15.0.6, 256 bits)');
  const c = chooseAdapter(sel(1, 2), cpuOnly);
  assert.deepEqual([c.name, c.index, c.warning, c.shared], [null, 0, null, 2]);
});

test('identical cards: Dawn selects by name only, so a rank mapped to the second card shares the first, with a warning saying how to pin GPUs', () => {
  const list = vk('NVIDIA H100 80GB HBM3', 'NVIDIA H100 80GB HBM3');
  assert.equal(openedByName(list.map((a) => a.name), 1), 0);
  const r1 = chooseAdapter(sel(1, 2), list);
  assert.deepEqual([r1.name, r1.index, r1.shared], [null, 0, 2]);
  assert.match(r1.warning!, /local rank 1 maps to adapter 1 \('NVIDIA H100 80GB HBM3'\), but Dawn's Node bindings select adapters only by name and adapter 0 \('NVIDIA H100 80GB HBM3'\) comes first with that name: this rank uses adapter 0, shared by 2 local rank/);
  assert.match(r1.warning!, /DRI_PRIME=pci-DDDD_BB_DD_F!/);
  // A name contained in an earlier adapter's name opens that one too.
  const sub = vk('NVIDIA GeForce RTX 4090 D', 'NVIDIA GeForce RTX 4090');
  assert.equal(chooseAdapter(sel(1, 2), sub).index, 0);
  assert.ok(chooseAdapter(sel(1, 2), sub).warning);
  // The other way round both can be selected.
  assert.equal(chooseAdapter(sel(1, 2), vk('NVIDIA GeForce RTX 4090', 'NVIDIA GeForce RTX 4090 D')).index, 1);
});

test('ADABATCH_WEBGPU_ADAPTER overrides: an index for every rank, one per local rank, or a name', () => {
  const list = vk('Intel(R) Arc(tm) A770 Graphics (DG2)', 'NVIDIA GeForce RTX 4090');
  const one = chooseAdapter(sel(0, 2, '1'), list);
  assert.deepEqual([one.name, one.index, one.shared], ['NVIDIA GeForce RTX 4090', 1, 2]);
  assert.match(one.reason, /ADABATCH_WEBGPU_ADAPTER=1: adapter 1 for local rank 0/);
  const perRank = chooseAdapter(sel(3, 4, '1,0'), list);
  assert.deepEqual([perRank.name, perRank.index, perRank.shared], [null, 0, 2]);
  const named = chooseAdapter(sel(1, 2, 'RTX'), null);
  assert.deepEqual([named.name, named.index, named.shared], ['RTX', null, 2]);
  assert.throws(() => chooseAdapter(sel(0, 1, '2'), list), /ADABATCH_WEBGPU_ADAPTER asks for adapter 2 for local rank 0, but there are 2: 0: 'Intel\(R\) Arc\(tm\) A770 Graphics \(DG2\)' \(vulkan\), 1: 'NVIDIA GeForce RTX 4090' \(vulkan\)/);
  assert.throws(() => chooseAdapter(sel(0, 1, '1'), vk('NVIDIA H100 80GB HBM3', 'NVIDIA H100 80GB HBM3')), /asks for adapter 1 \('NVIDIA H100 80GB HBM3'\) for local rank 0, but Dawn's Node bindings select adapters only by name and adapter 0/);
  assert.throws(() => chooseAdapter(sel(0, 1, '0'), null), /Dawn did not list its adapters/);
});

// ---- against the real Dawn (lavapipe: one adapter) ----------------------------------------------

const { gpu, skip } = openTestDevice();

/** Opens a backend with ADABATCH_WEBGPU_ADAPTER set to `value` (restored after). */
function withOverride<T>(value: string | undefined, f: () => T): T {
  const saved = process.env.ADABATCH_WEBGPU_ADAPTER;
  if (value === undefined) delete process.env.ADABATCH_WEBGPU_ADAPTER;
  else process.env.ADABATCH_WEBGPU_ADAPTER = value;
  try {
    return f();
  } finally {
    if (saved === undefined) delete process.env.ADABATCH_WEBGPU_ADAPTER;
    else process.env.ADABATCH_WEBGPU_ADAPTER = saved;
  }
}

test('on the real device: one rank opens the first adapter without listing; the second of two ranks lists Dawn\'s adapters and shares the only one', { skip }, () => {
  assert.equal(gpu!.device.selection?.index, null);
  assert.equal(gpu!.device.selection?.count, null);
  const g = withOverride(undefined, () => new WebGpuBackend({ placement: { localRank: 1, localRanks: 2, via: 'test' } }));
  try {
    const s = g.device.selection!;
    assert.deepEqual([s.name, s.index, s.count, s.warning, s.shared], [null, 0, 1, null, 2]);
    assert.equal(g.device.adapter, gpu!.device.adapter);
  } finally {
    g.dispose();
  }
});

test('on the real device: ADABATCH_WEBGPU_ADAPTER by index and by name; a missing index or name says what there is', { skip }, () => {
  for (const value of ['0', 'llvmpipe']) {
    const g = withOverride(value, () => new WebGpuBackend());
    assert.equal(g.device.adapter, gpu!.device.adapter, value);
    g.dispose();
  }
  assert.throws(() => withOverride('1', () => new WebGpuBackend()), /ADABATCH_WEBGPU_ADAPTER asks for adapter 1 for local rank 0, but there are 1: 0: 'llvmpipe/);
  assert.throws(() => withOverride('no such GPU', () => new WebGpuBackend()), /no WebGPU adapter named 'no such GPU' \(ADABATCH_WEBGPU_ADAPTER='no such GPU'.*\): .*Available adapters:\n \* backend: 'vulkan', name: 'llvmpipe/s);
});
