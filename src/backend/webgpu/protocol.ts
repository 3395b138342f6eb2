/**
 * Messages between the webgpu backend (any JavaScript thread) and its GPU worker thread.
 *
 * WebGPU reads results back asynchronously (mapAsync), but the Backend interface is synchronous
 * (download returns the data). So the device lives in a worker thread of its own: kernel calls are
 * posted to it in order and return at once; a synchronous call (init, download, synchronize) posts
 * its request and blocks the caller with Atomics.wait until the worker, whose event loop keeps
 * turning, writes the answer into shared memory and notifies.
 */
import type { AdapterChoice, AdapterSelection } from './adapter.js';

/** Words of the shared control block. */
export const CTRL_DONE = 0; // sequence number of the last completed synchronous request
export const CTRL_STATUS = 1; // 0 ok, 1 failed (message in the error buffer)
export const CTRL_ERROR_BYTES = 2; // length of the UTF-8 message
export const CTRL_WORDS = 4;
export const ERROR_BUFFER_BYTES = 8192;

export interface DeviceRequest {
  /** Which adapter, when several ('high-performance' first). */
  powerPreference?: 'high-performance' | 'low-power';
  /** Dawn toggles and options for `create()`, e.g. ['backend=vulkan']. */
  dawnOptions?: string[];
  /** Which adapter this rank opens (adapter.ts); without it, the first one. */
  adapter?: AdapterSelection;
}

export interface DeviceDescription {
  adapter: string;
  features: string[];
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  maxComputeWorkgroupsPerDimension: number;
  /** How the adapter was chosen (adapter.ts), when a selection was requested. */
  selection?: AdapterChoice;
}

/** A view of a buffer: id, byte offset, byte length. */
export type Region = [id: number, offset: number, bytes: number];

/** A tensor bound to a kernel: its region, and whether the kernel writes it. */
export interface Binding {
  region: Region;
  write: boolean;
  /** Bytes per unit of the offset the kernel gets: 2 for f16 tensors, else 4 (float32 words). */
  unit: 2 | 4;
}

export type Command =
  | { op: 'init'; seq: number; ctrl: SharedArrayBuffer; error: SharedArrayBuffer; result: SharedArrayBuffer; request: DeviceRequest }
  | { op: 'alloc'; id: number; bytes: number }
  | { op: 'free'; id: number }
  | { op: 'upload'; dst: Region; data: ArrayBuffer }
  | { op: 'download'; seq: number; src: Region; out: SharedArrayBuffer }
  | { op: 'copy'; dst: Region; src: Region }
  /**
   * One compute dispatch of kernel `name` (its WGSL `code` comes with the first dispatch of that
   * name). Binding 0 of the shader holds the offset (in `unit`s) of each tensor inside its binding
   * (`array<vec4u, 4>`: tensor i at [i / 4][i % 4]), binding 1 the kernel's `params` (uniform), and
   * the tensors follow at bindings 2, 3, … in order.
   */
  | { op: 'dispatch'; name: string; code?: string; params: ArrayBuffer; bindings: Binding[]; groups: [number, number, number] }
  | { op: 'sync'; seq: number }
  /** Tests only: destroys the device as a driver reset would, to exercise the lost-device path. */
  | { op: 'loseDevice' }
  | { op: 'close'; seq: number };
