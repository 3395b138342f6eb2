/**
 * The GPU worker of the webgpu backend: owns the WebGPU device, the buffers and the pipelines, and
 * runs the commands the backend posts, in order (protocol.ts). Kernels are recorded into one
 * command encoder (one compute pass for consecutive dispatches) and submitted in batches: when a
 * copy, upload or readback needs the queue, when the uniform ring is full, or every 256 dispatches.
 */
import { parentPort } from 'node:worker_threads';
import { create, globals } from 'webgpu';
import { CTRL_DONE, CTRL_ERROR_BYTES, CTRL_STATUS, type Command, type DeviceDescription, type DeviceRequest, type Region } from './protocol.js';
import * as S from './shaders.js';

Object.assign(globalThis, globals);

/** Bytes per dispatch's uniform block in the ring (WebGPU's minUniformBufferOffsetAlignment). */
const UNIFORM_STRIDE = 256;
const RING_SLOTS = 256;
const STORAGE_ALIGN = 256;

class Gpu {
  private readonly buffers = new Map<number, GPUBuffer>();
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private ring: GPUBuffer;
  private ringNext = 0;
  private readonly partials: GPUBuffer;
  /** Bound where a kernel's optional input is absent. */
  private readonly dummy: GPUBuffer;
  /** Temporaries of the batch being recorded, destroyed once it is submitted. */
  private temps: GPUBuffer[] = [];
  /** The first error a fire-and-forget command met; reported by the next synchronous request. */
  error: string | null = null;

  constructor(
    readonly device: GPUDevice,
    // A strong reference to what create() returned, for the life of the device (dawn.node crashes
    // or hangs when it is collected).
    readonly gpu: GPU,
    readonly description: DeviceDescription,
  ) {
    this.ring = device.createBuffer({ size: UNIFORM_STRIDE * RING_SLOTS, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.partials = device.createBuffer({ size: 8 * S.FLAT_WG * 64, usage: GPUBufferUsage.STORAGE });
    this.dummy = device.createBuffer({ size: 4, usage: GPUBufferUsage.STORAGE });
    device.addEventListener('uncapturederror', (e) => {
      this.error ??= `WebGPU error: ${(e as GPUUncapturedErrorEvent).error.message}`;
    });
  }

  alloc(id: number, bytes: number): void {
    if (bytes > this.description.maxBufferSize) throw new Error(`a tensor of ${bytes} bytes exceeds this device's maxBufferSize of ${this.description.maxBufferSize} bytes`);
    this.buffers.set(id, this.device.createBuffer({ size: Math.max(4, Math.ceil(bytes / 4) * 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST }));
  }

  free(id: number): void {
    this.buffers.get(id)?.destroy();
    this.buffers.delete(id);
  }

  private buffer(id: number): GPUBuffer {
    const b = this.buffers.get(id);
    if (!b) throw new Error(`webgpu: buffer ${id} is not allocated`);
    return b;
  }

  /** Submits what is recorded. */
  flush(): void {
    this.pass?.end();
    this.pass = null;
    if (this.encoder) this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.ringNext = 0;
    // Destroying after submit is deferred by WebGPU until the GPU is done with them.
    for (const t of this.temps) t.destroy();
    this.temps = [];
  }

  private enc(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  /** An encoder with no compute pass open (copies are recorded outside passes). */
  private copyEncoder(): GPUCommandEncoder {
    this.pass?.end();
    this.pass = null;
    return this.enc();
  }

  private pipeline(name: string, code: string): GPUComputePipeline {
    let p = this.pipelines.get(name);
    if (!p) {
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module: this.device.createShaderModule({ code }), entryPoint: 'main' } });
      this.pipelines.set(name, p);
    }
    return p;
  }

  /** The storage binding of a region (from a 256-byte boundary) and its first element's word offset. */
  private binding(r: Region): { resource: GPUBufferBinding; word: number } {
    const [id, offset, bytes] = r;
    const start = Math.floor(offset / STORAGE_ALIGN) * STORAGE_ALIGN;
    const size = Math.max(4, Math.ceil((offset + bytes - start) / 4) * 4);
    if (size > this.description.maxStorageBufferBindingSize) {
      throw new Error(`a tensor view of ${bytes} bytes exceeds this device's maxStorageBufferBindingSize of ${this.description.maxStorageBufferBindingSize} bytes (split the tensor or use a device with larger bindings)`);
    }
    return { resource: { buffer: this.buffer(id), offset: start, size }, word: (offset - start) / 4 };
  }

  /** Records one dispatch: uniform block `params` (≤ 256 bytes) at binding 0, storage at 1…. */
  private dispatch(name: string, code: string, params: ArrayBuffer, storage: GPUBufferBinding[], groups: [number, number]): void {
    if (this.ringNext === RING_SLOTS) this.flush();
    const slot = this.ringNext++;
    // Written at this slot before the batch is submitted; each slot is used once per batch.
    this.device.queue.writeBuffer(this.ring, slot * UNIFORM_STRIDE, params);
    const pipe = this.pipeline(name, code);
    const bind = this.device.createBindGroup({
      layout: pipe.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: this.ring, offset: slot * UNIFORM_STRIDE, size: params.byteLength } }, ...storage.map((resource, i) => ({ binding: i + 1, resource }))],
    });
    this.pass ??= this.enc().beginComputePass();
    this.pass.setPipeline(pipe);
    this.pass.setBindGroup(0, bind);
    this.pass.dispatchWorkgroups(groups[0], groups[1]);
  }

  upload(dst: Region, data: ArrayBuffer): void {
    // Kernels recorded before this upload must see the old contents: submit them first.
    this.flush();
    this.device.queue.writeBuffer(this.buffer(dst[0]), dst[1], data, 0, dst[2]);
  }

  async download(src: Region, out: SharedArrayBuffer): Promise<void> {
    const [id, offset, bytes] = src;
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    if (bytes > 0) this.copyEncoder().copyBufferToBuffer(this.buffer(id), offset, staging, 0, size);
    this.flush();
    await staging.mapAsync(GPUMapMode.READ);
    new Uint8Array(out).set(new Uint8Array(staging.getMappedRange(), 0, bytes));
    staging.unmap();
    staging.destroy();
  }

  copy(dst: Region, src: Region): void {
    const bytes = dst[2];
    if (bytes === 0) return;
    const e = this.copyEncoder();
    if (dst[0] !== src[0]) {
      e.copyBufferToBuffer(this.buffer(src[0]), src[1], this.buffer(dst[0]), dst[1], bytes);
      return;
    }
    // WebGPU copies never have one buffer as both source and destination: go through a temporary.
    const tmp = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    e.copyBufferToBuffer(this.buffer(src[0]), src[1], tmp, 0, bytes);
    e.copyBufferToBuffer(tmp, 0, this.buffer(dst[0]), dst[1], bytes);
    this.flush();
    tmp.destroy();
  }

  fill(dst: Region, words: [number, number], period: 1 | 2): void {
    const n = dst[2] / 4;
    if (n === 0) return;
    const b = this.binding(dst);
    const p = new Uint32Array([n, b.word, words[0], words[1], period, 0, 0, 0]);
    this.dispatch('fill', S.FILL, p.buffer, [b.resource], [flatGroups(n), 1]);
  }

  flat(kernel: 'scale' | 'axpy' | 'add' | 'addInplace' | 'doubleInplace', n: number, a: number, regions: Region[]): void {
    if (n === 0) return;
    const bs = regions.map((r) => this.binding(r));
    // Inputs in the written tensor's buffer are read from a copy (a writable binding must not alias).
    const resources = bs.map((b, i) => (i > 0 && regions[i]![0] === regions[0]![0] ? this.separateCopy(regions[i]!) : b.resource));
    const words = bs.map((b, i) => (i > 0 && regions[i]![0] === regions[0]![0] ? 0 : b.word));
    const p = new ArrayBuffer(32);
    new Uint32Array(p, 0, 4).set([n, words[0] ?? 0, words[1] ?? 0, words[2] ?? 0]);
    new Float32Array(p, 16, 2).set([a, 0]);
    const code = { scale: S.SCALE, axpy: S.AXPY, add: S.ADD, addInplace: S.ADD_INPLACE, doubleInplace: S.DOUBLE_INPLACE }[kernel];
    this.dispatch(kernel, code, p, resources, [flatGroups(n), 1]);
  }

  reduce(mode: 0 | 1 | 2, n: number, a: number, x: Region, y: Region | null, out: Region): void {
    const bx = this.binding(x);
    const bo = this.binding(out);
    // A few workgroups' partials, then one workgroup adds them into the double-float slot.
    const groups = Math.max(1, Math.min(64, Math.ceil(n / (S.FLAT_WG * 16))));
    if (n > 0) {
      // y is bound read-only next to x (read-write): from its own buffer, a copy, or a dummy (mode 0).
      let yRes: GPUBufferBinding = { buffer: this.dummy, offset: 0, size: 4 };
      let yWord = 0;
      if (y !== null && y[0] === x[0]) yRes = this.separateCopy(y);
      else if (y !== null) ({ resource: yRes, word: yWord } = this.binding(y));
      const p1 = new ArrayBuffer(32);
      new Uint32Array(p1, 0, 4).set([n, bx.word, yWord, 0]);
      new Float32Array(p1, 16, 2).set([a, 0]);
      new Uint32Array(p1, 24, 2).set([mode, 0]);
      this.dispatch('reducePartial', S.REDUCE_PARTIAL, p1, [bx.resource, yRes, { buffer: this.partials, offset: 0, size: 8 * groups }], [groups, 1]);
    }
    const p2 = new ArrayBuffer(32);
    new Uint32Array(p2, 0, 4).set([n > 0 ? groups : 0, bo.word, 0, 0]);
    this.dispatch('reduceFinish', S.REDUCE_FINISH, p2, [bo.resource, { buffer: this.partials, offset: 0, size: 8 * groups }], [1, 1]);
  }

  /** A region of the same buffer as another binding of one dispatch, copied out (bindings must not alias a writable one). */
  private separateCopy(r: Region): GPUBufferBinding {
    const bytes = Math.max(4, r[2]);
    const tmp = this.device.createBuffer({ size: Math.ceil(bytes / 4) * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    this.temps.push(tmp);
    if (r[2] > 0) this.copyEncoder().copyBufferToBuffer(this.buffer(r[0]), r[1], tmp, 0, r[2]);
    return { buffer: tmp, offset: 0, size: Math.ceil(bytes / 4) * 4 };
  }

  matmul(c: Command & { op: 'matmul' }): void {
    if (c.m === 0 || c.n === 0) return;
    const bc = this.binding(c.c);
    const ba = this.binding(c.a);
    const bb = this.binding(c.b);
    // Operands in C's buffer are read from copies (a writable binding must not alias another).
    const aCopied = c.a[0] === c.c[0];
    const bCopied = c.b[0] === c.c[0];
    const a = aCopied ? this.separateCopy(c.a) : ba.resource;
    const b = bCopied ? this.separateCopy(c.b) : bb.resource;
    const p = new ArrayBuffer(48);
    new Uint32Array(p, 0, 8).set([c.m, c.n, c.k, c.transA ? 1 : 0, c.transB ? 1 : 0, aCopied ? 0 : ba.word, bCopied ? 0 : bb.word, bc.word]);
    new Float32Array(p, 32, 2).set([c.alpha, c.beta]);
    this.dispatch('matmul', S.MATMUL, p, [bc.resource, a, b], [Math.ceil(c.n / S.MM_TILE), Math.ceil(c.m / S.MM_TILE)]);
  }
}

const flatGroups = (n: number): number => Math.max(1, Math.min(S.MAX_FLAT_GROUPS, Math.ceil(n / S.FLAT_WG)));

async function openDevice(request: DeviceRequest): Promise<Gpu> {
  const gpu = create(request.dawnOptions ?? []);
  const adapter = await gpu.requestAdapter(request.powerPreference ? { powerPreference: request.powerPreference } : {});
  if (!adapter) {
    throw new Error(
      'no WebGPU adapter: no Vulkan driver answered. On a GPU machine install its Vulkan driver and the loader (Debian: libvulkan1, plus mesa-vulkan-drivers for AMD/Intel or the NVIDIA driver); without a GPU, Mesa\'s software driver lavapipe works (Debian bookworm-backports mesa-vulkan-drivers, with VK_DRIVER_FILES=/usr/share/vulkan/icd.d/lvp_icd.json)',
    );
  }
  const limits = adapter.limits;
  const device = await adapter.requestDevice({
    requiredLimits: { maxBufferSize: limits.maxBufferSize, maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize },
  });
  const info = adapter.info;
  const description: DeviceDescription = {
    adapter: [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(' ') || 'unknown adapter',
    features: [...adapter.features].map(String).sort(),
    maxBufferSize: limits.maxBufferSize,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
  };
  return new Gpu(device, gpu, description);
}

// ---------------------------------------------------------------------------------------------

let gpu: Gpu | null = null;
let ctrl: Int32Array | null = null;
let errorBytes: Uint8Array | null = null;

/** Completes synchronous request `seq`: ok, or the error text for the waiting caller. */
function answer(seq: number, error: string | null): void {
  if (!ctrl || !errorBytes) return;
  if (error !== null) {
    const bytes = new TextEncoder().encode(error).subarray(0, errorBytes.length);
    errorBytes.set(bytes);
    Atomics.store(ctrl, CTRL_ERROR_BYTES, bytes.length);
  }
  Atomics.store(ctrl, CTRL_STATUS, error === null ? 0 : 1);
  Atomics.store(ctrl, CTRL_DONE, seq);
  Atomics.notify(ctrl, CTRL_DONE);
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

async function run(c: Command): Promise<void> {
  if (c.op === 'init') {
    ctrl = new Int32Array(c.ctrl);
    errorBytes = new Uint8Array(c.error);
    try {
      gpu = await openDevice(c.request);
      const json = new TextEncoder().encode(JSON.stringify(gpu.description));
      new Uint8Array(c.result).set(json.subarray(0, c.result.byteLength));
      answer(c.seq, null);
    } catch (e) {
      answer(c.seq, message(e));
    }
    return;
  }
  if (!gpu) return;
  const g = gpu;
  if (c.op === 'download' || c.op === 'sync') {
    try {
      if (c.op === 'download') await g.download(c.src, c.out);
      else {
        g.flush();
        await g.device.queue.onSubmittedWorkDone();
      }
      const err = g.error;
      g.error = null;
      answer(c.seq, err);
    } catch (e) {
      answer(c.seq, message(e));
    }
    return;
  }
  try {
    switch (c.op) {
      case 'alloc':
        return g.alloc(c.id, c.bytes);
      case 'free':
        return g.free(c.id);
      case 'upload':
        return g.upload(c.dst, c.data);
      case 'copy':
        return g.copy(c.dst, c.src);
      case 'fill':
        return g.fill(c.dst, c.words, c.period);
      case 'flat':
        return g.flat(c.kernel, c.n, c.a, c.regions);
      case 'reduce':
        return g.reduce(c.mode, c.n, c.a, c.x, c.y, c.out);
      case 'matmul':
        return g.matmul(c);
      case 'close':
        g.flush();
        g.device.destroy();
        gpu = null;
        parentPort!.close();
        return;
    }
  } catch (e) {
    g.error ??= message(e);
  }
}

// Commands run strictly in order, asynchronous ones included.
let chain: Promise<void> = Promise.resolve();
parentPort!.on('message', (c: Command) => {
  chain = chain.then(() => run(c));
});
