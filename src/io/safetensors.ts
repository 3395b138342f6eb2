/**
 * The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
 * length, a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__: {…}}, then
 * the raw little-endian tensor bytes. Files are read tensor by tensor through a file descriptor, so
 * files larger than a Node Buffer (e.g. a 4.4 GB float32 TinyLlama) work.
 *
 * Reading
 *   SafetensorsReader.open(path)          random access: names(), info(name), readFloat32(name) …
 *   readSafetensorsFile(path, {sha256})   one sequential pass that loads the (selected) tensors AND
 *                                         hashes every byte of the file, so a checkpoint's checksum is
 *                                         verified without reading the file twice
 * Writing
 *   writeSafetensorsFd(fd, tensors, metadata, onChunk)   tensors in order; `data` may be a function
 *                                         called just before that tensor is written (streaming from a
 *                                         device one tensor at a time); onChunk sees every byte.
 *   floatToHalf / floatToBf16             float32 → F16 / BF16 bit patterns (round to nearest even)
 *
 * Every problem with a file is a SafetensorsError (a UserError) whose message starts with the path.
 * Hosts are assumed little-endian (x86-64, ARM64), like the format.
 */
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import { UserError } from '../util/errors.js';

if (endianness() !== 'LE') throw new Error('adabatch safetensors I/O assumes a little-endian host');

export type SafeDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_SIZE: Record<SafeDType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export interface TensorInfo {
  dtype: SafeDType;
  shape: number[];
  /** Byte range inside the data section. */
  begin: number;
  end: number;
}

/** A problem with a safetensors file (a UserError: it is about a file the user gave us). */
export class SafetensorsError extends UserError {
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'SafetensorsError';
  }
}

/** Largest header we accept (the format's reference implementation caps it at 100 MB). */
const MAX_HEADER = 100 * 1024 * 1024;
/** Largest single read (readSync is limited to 2 GiB − 1 per call). */
const MAX_READ = 1 << 30;

export interface SafetensorsHeader {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** File offset of the data section (8 + header length). */
  dataStart: number;
  fileSize: number;
}

/** Parses and validates the header of an open file (every range inside the file, none overlapping). */
export function readSafetensorsHeader(path: string, fd: number): SafetensorsHeader {
  const st = fstatSync(fd);
  const fail = (msg: string): never => {
    throw new SafetensorsError(path, msg);
  };
  if (!st.isFile()) fail('not a regular file');
  const fileSize = st.size;
  if (fileSize < 8) fail(`truncated: ${fileSize} bytes, shorter than the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  readFully(path, fd, lenBuf, 0);
  const headerLen = Number(lenBuf.readBigUInt64LE(0));
  if (headerLen > MAX_HEADER) fail(`header length ${headerLen} is implausible (corrupt file?)`);
  if (8 + headerLen > fileSize) fail(`truncated header: it declares ${headerLen} bytes but the file has only ${fileSize - 8} after the length`);
  const hdr = Buffer.alloc(headerLen);
  readFully(path, fd, hdr, 8);
  let json: unknown = null;
  try {
    json = JSON.parse(hdr.toString('utf8'));
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) fail('header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataSize = fileSize - dataStart;
  const tensors = new Map<string, TensorInfo>();
  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      // The format (and the reference implementation) allows a string → string map only.
      if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(`__metadata__ must be an object of strings, got ${JSON.stringify(value)?.slice(0, 40)}`);
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__['${k.slice(0, 40)}'] must be a string, got ${JSON.stringify(v)?.slice(0, 40)}`);
        metadata[k] = v as string;
      }
      continue;
    }
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!v || typeof v !== 'object') fail(`tensor '${name}': entry is not an object`);
    const dtype = v.dtype as SafeDType;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_SIZE, dtype)) fail(`tensor '${name}': unsupported dtype ${JSON.stringify(v.dtype)}`);
    const shape = v.shape;
    if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && s >= 0)) fail(`tensor '${name}': invalid shape ${JSON.stringify(shape)}`);
    const offs = v.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) fail(`tensor '${name}': invalid data_offsets`);
    const [begin, end] = offs as [number, number];
    if (end < begin) fail(`tensor '${name}': data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataSize) fail(`truncated: tensor '${name}' ends at byte ${end} of the data section, which has only ${dataSize} bytes`);
    // The element count, without overflowing: it cannot exceed the bytes the data section holds.
    const dims = shape as number[];
    let count = dims.includes(0) ? 0 : 1;
    for (const n of dims) {
      if (count === 0) break;
      count *= n;
      if (count * DTYPE_SIZE[dtype] > dataSize) fail(`tensor '${name}': ${dtype}[${dims.join(', ')}] needs more bytes than the data section's ${dataSize}`);
    }
    if (end - begin !== count * DTYPE_SIZE[dtype]) fail(`tensor '${name}': data_offsets span ${end - begin} bytes, but ${dtype}[${dims.join(', ')}] needs ${count * DTYPE_SIZE[dtype]}`);
    tensors.set(name, { dtype, shape: dims, begin, end });
  }
  // No two tensors may share a byte. Zero-size tensors hold no bytes (they may sit anywhere in
  // [0, data size], as in the reference implementation) and are left out: left in, one sorted
  // between two overlapping tensors hid their overlap. The others, sorted by start, must each start
  // at or after the furthest end so far.
  const sorted = [...tensors.entries()].filter(([, t]) => t.end > t.begin).sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  let reach: [string, TensorInfo] | null = null;
  for (const entry of sorted) {
    if (reach && entry[1].begin < reach[1].end) fail(`tensors '${reach[0]}' and '${entry[0]}' overlap in the data section (corrupt header)`);
    if (!reach || entry[1].end > reach[1].end) reach = entry;
  }
  return { tensors, metadata, dataStart, fileSize };
}

/** Reads exactly dst.length bytes at `position`; a short read means the file was truncated. */
function readFully(path: string, fd: number, dst: Uint8Array, position: number, what = 'data'): void {
  let done = 0;
  while (done < dst.length) {
    const n = readSync(fd, dst, done, Math.min(dst.length - done, MAX_READ), position + done);
    if (n === 0) throw new SafetensorsError(path, `unexpected end of file reading ${what} (truncated?)`);
    done += n;
  }
}

export class SafetensorsReader {
  readonly tensors: Map<string, TensorInfo>;
  readonly metadata: Record<string, string>;
  /** The file's size in bytes. */
  readonly fileSize: number;
  private readonly dataStart: number;
  private fd: number | null;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
    try {
      const h = readSafetensorsHeader(path, fd);
      this.tensors = h.tensors;
      this.metadata = h.metadata;
      this.dataStart = h.dataStart;
      this.fileSize = h.fileSize;
    } catch (e) {
      this.close();
      throw e;
    }
  }

  static open(path: string): SafetensorsReader {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new SafetensorsError(path, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    return new SafetensorsReader(path, fd);
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(this.path, `no tensor named '${name}'`);
    return t;
  }

  /** Raw bytes of one tensor (a fresh, 8-byte aligned buffer). */
  readBytes(name: string): Buffer {
    if (this.fd === null) throw new SafetensorsError(this.path, 'file is closed');
    const t = this.info(name);
    const buf = Buffer.from(new ArrayBuffer(t.end - t.begin));
    readFully(this.path, this.fd, buf, this.dataStart + t.begin, `'${name}'`);
    return buf;
  }

  /** A floating-point tensor converted to float32 (F32, F16, BF16 and F64 are accepted). */
  readFloat32(name: string): Float32Array {
    const t = this.info(name);
    if (!isFloatDType(t.dtype)) throw new SafetensorsError(this.path, `tensor '${name}' has dtype ${t.dtype}, expected a floating-point type`);
    return bytesToFloat32(t.dtype, this.readBytes(name));
  }

  readFloat64(name: string): Float64Array {
    const t = this.info(name);
    if (t.dtype !== 'F64') return Float64Array.from(this.readFloat32(name));
    const b = this.readBytes(name);
    return new Float64Array(b.buffer, b.byteOffset, b.length / 8).slice();
  }

  readInt32(name: string): Int32Array {
    const t = this.info(name);
    const b = this.readBytes(name);
    if (t.dtype === 'I32') return new Int32Array(b.buffer, b.byteOffset, b.length / 4);
    if (t.dtype === 'I64') {
      const out = new Int32Array(b.length / 8);
      for (let i = 0; i < out.length; i++) out[i] = Number(b.readBigInt64LE(8 * i));
      return out;
    }
    throw new SafetensorsError(this.path, `tensor '${name}' has dtype ${t.dtype}, expected I32 or I64`);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

export function isFloatDType(d: SafeDType): d is 'F32' | 'F64' | 'F16' | 'BF16' {
  return d === 'F32' || d === 'F64' || d === 'F16' || d === 'BF16';
}

/**
 * Converts little-endian bytes of a floating-point dtype to float32. `bytes` must be 8-byte aligned
 * (every buffer this module allocates is); for F32 the result shares its memory.
 */
export function bytesToFloat32(dtype: 'F32' | 'F64' | 'F16' | 'BF16', bytes: Uint8Array): Float32Array {
  switch (dtype) {
    case 'F32':
      return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    case 'F64':
      return Float32Array.from(new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8));
    case 'F16': {
      const h = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
      const out = new Float32Array(h.length);
      for (let i = 0; i < h.length; i++) out[i] = halfToFloat(h[i]!);
      return out;
    }
    case 'BF16': {
      // A bfloat16 is the upper half of a float32: exact, no rounding.
      const h = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
      const out = new Float32Array(h.length);
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < h.length; i++) u[i] = h[i]! << 16;
      return out;
    }
  }
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → bfloat16 bits, rounding to nearest even (as torch's .to(torch.bfloat16)); NaN stays NaN. */
export function floatToBf16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff; // quiet NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 → IEEE half bits, rounding to nearest even; overflow gives ±Inf, tiny values subnormals or ±0. */
export function floatToHalf(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000; // implicit leading one
    const shift = 14 - e; // 24-bit significand → subnormal half
    const half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rem > mid || (rem === mid && half & 1) ? 1 : 0));
  }
  const half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // Carry out of the mantissa correctly increments the exponent (up to Inf).
  return sign | (half + (rem > 0x1000 || (rem === 0x1000 && half & 1) ? 1 : 0));
}

/** Host arrays a tensor can be written from. F16/BF16 take raw bit patterns (Uint16Array), U8/BOOL bytes. */
export type WritableArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint16Array | Uint8Array;

export interface TensorToWrite {
  name: string;
  dtype: 'F32' | 'F64' | 'I32' | 'I64' | 'F16' | 'BF16' | 'U8';
  shape: number[];
  /** The data, or a function producing it when the tensor is about to be written (streaming). */
  data: WritableArray | (() => WritableArray);
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Serialises the header for `tensors` (in the given order), padded so the data section is 8-byte aligned. */
export function encodeHeader(tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const count = elementCount(t.shape);
    if (typeof t.data !== 'function' && count !== t.data.length) throw new Error(`tensor '${t.name}': shape [${t.shape.join(', ')}] has ${count} elements, data has ${t.data.length}`);
    if (Object.hasOwn(header, t.name)) throw new Error(`tensor '${t.name}' appears twice`);
    const bytes = count * DTYPE_SIZE[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8; // keep the data section 8-byte aligned
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json]);
}

/** Little-endian bytes of a typed array (a view; x86/ARM hosts are little-endian). */
function bytesOf(a: WritableArray): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Writes a safetensors file to an open descriptor. `onChunk` sees every byte written (for
 * checksums). Tensors whose data is a function are materialised one at a time, just before they are
 * written. The caller handles atomicity (write to a temporary name, fsync, rename).
 */
export function writeSafetensorsFd(fd: number, tensors: readonly TensorToWrite[], metadata?: Record<string, string>, onChunk?: (b: Buffer) => void): number {
  const head = encodeHeader(tensors, metadata);
  let total = 0;
  const put = (c: Buffer): void => {
    let done = 0;
    while (done < c.length) done += writeSync(fd, c, done, Math.min(c.length - done, MAX_READ));
    onChunk?.(c);
    total += c.length;
  };
  put(head);
  for (const t of tensors) {
    const data = typeof t.data === 'function' ? t.data() : t.data;
    const count = elementCount(t.shape);
    if (data.length !== count) throw new Error(`tensor '${t.name}': shape [${t.shape.join(', ')}] has ${count} elements, data has ${data.length}`);
    if (data.BYTES_PER_ELEMENT !== DTYPE_SIZE[t.dtype]) throw new Error(`tensor '${t.name}': ${t.dtype} needs ${DTYPE_SIZE[t.dtype]}-byte elements, got a ${data.constructor.name}`);
    put(bytesOf(data));
  }
  return total;
}

/** A tensor loaded by readSafetensorsFile: raw little-endian bytes in their own aligned buffer. */
export interface RawTensor {
  dtype: SafeDType;
  shape: number[];
  bytes: Uint8Array;
}

export interface ReadFileOptions {
  /** Which tensors to keep in memory (default all); the others are still read and hashed. */
  select?: (name: string, info: TensorInfo) => boolean;
  /** Expected digest of the whole file; a mismatch throws SafetensorsError before anything is returned. */
  expect?: { size: number; sha256: string };
}

export interface ReadFileResult {
  tensors: Map<string, RawTensor>;
  /** Every tensor in the header (kept or not). */
  infos: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  size: number;
  sha256: string;
}

/**
 * Reads a safetensors file front to back in one pass: the selected tensors land in their own
 * buffers, every byte (header, padding, unselected tensors) goes through SHA-256. With `expect`,
 * the size is checked before reading and the hash after; on mismatch nothing is returned.
 */
export function readSafetensorsFile(path: string, opts: ReadFileOptions = {}): ReadFileResult {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new SafetensorsError(path, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const size = fstatSync(fd).size;
    if (opts.expect && size !== opts.expect.size) throw new SafetensorsError(path, `size is ${size} bytes, the checkpoint manifest records ${opts.expect.size} (truncated or modified)`);
    const header = readSafetensorsHeader(path, fd);
    const hash = createHash('sha256');
    const scratch = Buffer.allocUnsafe(8 * 1024 * 1024);
    let pos = 0;
    // Hash [pos, upTo) through the scratch buffer.
    const skipTo = (upTo: number): void => {
      while (pos < upTo) {
        const n = readSync(fd, scratch, 0, Math.min(scratch.length, upTo - pos), pos);
        if (n === 0) throw new SafetensorsError(path, 'unexpected end of file (truncated?)');
        hash.update(scratch.subarray(0, n));
        pos += n;
      }
    };
    skipTo(header.dataStart);
    const tensors = new Map<string, RawTensor>();
    // The header guarantees non-empty ranges do not overlap, so in this order every byte is read
    // (and hashed) exactly once. Zero-size tensors read nothing and never move `pos` (not even back:
    // one that starts where an earlier tensor starts would otherwise make bytes be hashed twice).
    const ordered = [...header.tensors.entries()].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
    for (const [name, info] of ordered) {
      const begin = header.dataStart + info.begin;
      const end = header.dataStart + info.end;
      const keep = !opts.select || opts.select(name, info);
      if (end === begin) {
        if (keep) tensors.set(name, { dtype: info.dtype, shape: info.shape, bytes: new Uint8Array(0) });
        continue;
      }
      if (!keep) {
        skipTo(end);
        continue;
      }
      skipTo(begin);
      if (pos !== begin) throw new Error(`${path}: internal error: tensor '${name}' starts at ${begin}, already read up to ${pos}`);
      const bytes = new Uint8Array(new ArrayBuffer(info.end - info.begin));
      readFully(path, fd, bytes, begin, `'${name}'`);
      hash.update(bytes);
      pos = end;
      tensors.set(name, { dtype: info.dtype, shape: info.shape, bytes });
    }
    skipTo(size);
    const sha256 = hash.digest('hex');
    if (opts.expect && sha256 !== opts.expect.sha256) throw new SafetensorsError(path, `SHA-256 mismatch: file has ${sha256}, the checkpoint manifest records ${opts.expect.sha256} (corrupt or modified)`);
    return { tensors, infos: header.tensors, metadata: header.metadata, size, sha256 };
  } finally {
    closeSync(fd);
  }
}
