/**
 * The GPU worker of the webgpu backend: owns the WebGPU device, the buffers and the pipelines, and
 * runs the commands the backend posts, in order (protocol.ts). It knows no kernel: each dispatch
 * brings its WGSL (once), its parameters and its tensors. Dispatches are recorded into one command
 * encoder (one compute pass for consecutive dispatches) and submitted in batches: when a copy,
 * upload or readback needs the queue, or when the uniform ring is full (128 dispatches).
 */
import { parentPort } from 'node:worker_threads';
import { create, globals } from 'webgpu';
import { chooseAdapter, needsAdapterList, parseAdapterList, type ListedAdapter } from './adapter.js';
import { allocationFailure } from './device-memory.js';
import { CTRL_DONE, CTRL_ERROR_BYTES, CTRL_STATUS, type Binding, type Command, type DeviceDescription, type DeviceRequest, type Region } from './protocol.js';

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
  /** Temporaries of the batch being recorded, destroyed once it is submitted. */
  private temps: GPUBuffer[] = [];
  /** The first error a fire-and-forget command met; reported by the next synchronous request. */
  error: string | null = null;
  /** Why the device was lost (driver reset, GPU removed, …), once it is: every later request fails with it. */
  lost: string | null = null;

  constructor(
    readonly device: GPUDevice,
    // A strong reference to what create() returned, for the life of the device (dawn.node crashes
    // or hangs when it is collected).
    readonly gpu: GPU,
    readonly description: DeviceDescription,
  ) {
    this.ring = device.createBuffer({ size: UNIFORM_STRIDE * RING_SLOTS, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    void device.lost.then((info) => {
      this.lost = `the WebGPU device was lost (${info.reason}${info.message ? `: ${info.message}` : ''}); the run's last checkpoint is intact: resume it with adabatch train --resume RUN_DIR`;
    });
    device.addEventListener('uncapturederror', (e) => {
      this.error ??= `WebGPU error: ${(e as GPUUncapturedErrorEvent).error.message}`;
    });
  }

  /**
   * The buffer of tensor `id`, created inside error scopes: when the device refuses it (out of
   * memory, or beyond maxBufferSize) the error names the tensor, what is live and what to lower
   * (device-memory.ts), and the next synchronous call reports it. Nobody waits for the scopes: they
   * are answered in the next turn of Dawn's event processing, before any read-back or sync posted
   * later (Dawn completes its events in the order they were made, and each answer is handled
   * directly on its promise), and the answer replaces the validation errors that commands using
   * the missing buffer may have raised meanwhile.
   */
  alloc(id: number, bytes: number): void {
    const d = this.device;
    d.pushErrorScope('out-of-memory');
    d.pushErrorScope('validation');
    const buffer = d.createBuffer({ size: Math.max(4, Math.ceil(bytes / 4) * 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    this.buffers.set(id, buffer);
    const refused = (kind: 'out-of-memory' | 'validation') => (e: GPUError | null): void => {
      if (!e) return;
      let liveBytes = 0;
      let liveTensors = 0;
      for (const [other, b] of this.buffers) {
        if (other === id) continue;
        liveBytes += b.size;
        liveTensors++;
      }
      const failure = allocationFailure({ kind, bytes, liveBytes, liveTensors, maxBufferSize: this.description.maxBufferSize, detail: e.message });
      if (this.error === null || this.error.startsWith('WebGPU error:')) this.error = failure;
    };
    d.popErrorScope().then(refused('validation'), () => {});
    d.popErrorScope().then(refused('out-of-memory'), () => {});
  }

  free(id: number): void {
    const b = this.buffers.get(id);
    this.buffers.delete(id);
    // Recorded commands may still use it: destroy it once they are submitted.
    if (b && this.encoder) this.temps.push(b);
    else b?.destroy();
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

  /** The storage binding of a region (from a 256-byte boundary) and its first element's offset in `unit`s. */
  private binding(r: Region, unit: number): { resource: GPUBufferBinding; word: number } {
    const [id, offset, bytes] = r;
    const start = Math.floor(offset / STORAGE_ALIGN) * STORAGE_ALIGN;
    const size = Math.max(4, Math.ceil((offset + bytes - start) / 4) * 4);
    if (size > this.description.maxStorageBufferBindingSize) {
      throw new Error(`a tensor view of ${bytes} bytes exceeds this device's maxStorageBufferBindingSize of ${this.description.maxStorageBufferBindingSize} bytes (split the tensor or use a device with larger bindings)`);
    }
    return { resource: { buffer: this.buffer(id), offset: start, size }, word: (offset - start) / unit };
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

  /**
   * One dispatch (protocol.ts): the offsets block, the params block and the tensors. A tensor the
   * kernel reads from the buffer of one it writes is read from a copy (WebGPU forbids a writable
   * binding aliasing another); two written tensors must not share a buffer.
   */
  run(name: string, code: string | undefined, params: ArrayBuffer, bindings: Binding[], groups: [number, number, number]): void {
    if (code !== undefined && !this.pipelines.has(name)) this.pipeline(name, code);
    const pipe = this.pipelines.get(name);
    if (!pipe) throw new Error(`webgpu: kernel '${name}' was never compiled`);
    const written = new Set(bindings.filter((b) => b.write).map((b) => b.region[0]));
    if (written.size !== bindings.filter((b) => b.write).length) throw new Error(`webgpu: kernel '${name}' writes two tensors of one buffer`);
    // Flush before anything of this dispatch is recorded: a flush destroys the batch's temporaries.
    if (this.ringNext + 2 > RING_SLOTS) this.flush();
    const offsets = new Uint32Array(16);
    const resources = bindings.map((b, i) => {
      if (!b.write && written.has(b.region[0])) {
        const { resource, word } = this.separateCopy(b.region, b.unit);
        offsets[i] = word;
        return resource;
      }
      const { resource, word } = this.binding(b.region, b.unit);
      offsets[i] = word;
      return resource;
    });
    const slot = this.ringNext;
    this.ringNext += 2;
    // Written at these slots before the batch is submitted; each slot is used once per batch.
    this.device.queue.writeBuffer(this.ring, slot * UNIFORM_STRIDE, offsets);
    const paramBytes = Math.max(16, Math.ceil(params.byteLength / 16) * 16);
    const padded = new Uint8Array(paramBytes);
    padded.set(new Uint8Array(params));
    this.device.queue.writeBuffer(this.ring, (slot + 1) * UNIFORM_STRIDE, padded);
    const bind = this.device.createBindGroup({
      layout: pipe.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: this.ring, offset: slot * UNIFORM_STRIDE, size: 64 } },
        { binding: 1, resource: { buffer: this.ring, offset: (slot + 1) * UNIFORM_STRIDE, size: paramBytes } },
        ...resources.map((resource, i) => ({ binding: i + 2, resource })),
      ],
    });
    this.pass ??= this.enc().beginComputePass();
    this.pass.setPipeline(pipe);
    this.pass.setBindGroup(0, bind);
    this.pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
  }

  /**
   * A region of the same buffer as a written binding of one dispatch, copied out (from the 4-byte
   * word it starts in: buffer copies are word-aligned, an f16 view need not be).
   */
  private separateCopy(r: Region, unit: number): { resource: GPUBufferBinding; word: number } {
    const start = Math.floor(r[1] / 4) * 4;
    const size = Math.max(4, Math.ceil((r[1] + r[2] - start) / 4) * 4);
    const tmp = this.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    this.temps.push(tmp);
    if (r[2] > 0) this.copyEncoder().copyBufferToBuffer(this.buffer(r[0]), start, tmp, 0, size);
    return { resource: { buffer: tmp, offset: 0, size }, word: (r[1] - start) / unit };
  }
}

/** GPU objects made only to list adapters, kept for the life of the worker. */
const probes: GPU[] = [];

/**
 * Dawn's adapter list, in the order requestAdapter searches it (adapter.ts): a name that matches
 * nothing rejects with the list. [] when there is no adapter; null when the message has no list.
 */
async function listAdapters(dawnOptions: readonly string[], options: GPURequestAdapterOptions): Promise<ListedAdapter[] | null> {
  const probe = create([...dawnOptions.filter((o) => !o.startsWith('adapter=')), 'adapter=\u0001adabatch: list the adapters']);
  // dawn.node must not collect a GPU object while this thread lives.
  probes.push(probe);
  try {
    return (await probe.requestAdapter(options)) ? null : [];
  } catch (e) {
    return parseAdapterList(message(e));
  }
}

async function openDevice(request: DeviceRequest): Promise<Gpu> {
  const options: GPURequestAdapterOptions = request.powerPreference ? { powerPreference: request.powerPreference } : {};
  const sel = request.adapter;
  const selection = sel ? chooseAdapter(sel, needsAdapterList(sel) ? await listAdapters(request.dawnOptions ?? [], options) : null) : undefined;
  const name = selection?.name ?? null;
  const gpu = create([...(request.dawnOptions ?? []), ...(name !== null ? [`adapter=${name}`] : [])]);
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter(options);
  } catch (e) {
    // Dawn's answer to an adapter name that matches nothing lists the adapters it sees.
    if (name === null) throw e;
    throw new Error(`no WebGPU adapter named '${name}' (${selection!.reason}): ${message(e)}`);
  }
  if (!adapter) {
    throw new Error(
      'no WebGPU adapter: no Vulkan driver answered. On a GPU machine install its Vulkan driver and the loader (Debian: libvulkan1, plus mesa-vulkan-drivers for AMD/Intel or the NVIDIA driver); without a GPU, Mesa\'s software driver lavapipe works (Debian bookworm-backports mesa-vulkan-drivers, with VK_DRIVER_FILES=/usr/share/vulkan/icd.d/lvp_icd.json)',
    );
  }
  const limits = adapter.limits;
  // shader-f16 where the adapter has it: the f16 tensors of precision f16 (WGSL `enable f16`).
  const device = await adapter.requestDevice({
    requiredFeatures: adapter.features.has('shader-f16') ? ['shader-f16'] : [],
    requiredLimits: { maxBufferSize: limits.maxBufferSize, maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize },
  });
  const info = adapter.info;
  const description: DeviceDescription = {
    adapter: [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(' ') || 'unknown adapter',
    features: [...adapter.features].map(String).sort(),
    maxBufferSize: limits.maxBufferSize,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
    ...(selection && { selection }),
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
  if (c.op === 'close') {
    // Everything queued before is done; the device goes away while this thread is healthy (dawn.node
    // aborts the process when a device or buffer is destroyed while its thread is being torn down).
    try {
      g.flush();
      await g.device.queue.onSubmittedWorkDone();
      g.device.destroy();
      // Wait for the device's lost promise (reason 'destroyed'): dawn.node delivers it from native
      // code later, and delivered into a thread or process already tearing down it aborts
      // (napi_throw FATAL ERROR at exit).
      await g.device.lost;
      gpu = null;
      answer(c.seq, null);
    } catch (e) {
      answer(c.seq, message(e));
    }
    parentPort!.close();
    return;
  }
  if ((c.op === 'download' || c.op === 'sync') && g.lost) {
    answer(c.seq, g.lost);
    return;
  }
  if (c.op === 'download' || c.op === 'sync') {
    try {
      if (c.op === 'download') await g.download(c.src, c.out);
      else {
        g.flush();
        await g.device.queue.onSubmittedWorkDone();
      }
      const err = g.lost ?? g.error;
      g.error = null;
      answer(c.seq, err);
    } catch (e) {
      answer(c.seq, g.lost ?? message(e));
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
      case 'dispatch':
        return g.run(c.name, c.code, c.params, c.bindings, c.groups);
      case 'loseDevice':
        g.flush();
        g.device.destroy();
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
