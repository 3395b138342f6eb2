/**
 * The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
 * length, a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__: {…}}, then
 * the raw little-endian tensor bytes. Files are read tensor by tensor through a file descriptor, so
 * files larger than a Node Buffer (e.g. a 4.4 GB float32 TinyLlama) work.
 */
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';

export type SafeDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const DTYPE_SIZE: Record<SafeDType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export interface TensorInfo {
  dtype: SafeDType;
  shape: number[];
  /** Byte range inside the data section. */
  begin: number;
  end: number;
}

export class SafetensorsError extends Error {
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'SafetensorsError';
  }
}

/** Largest header we accept (the format's reference implementation caps it at 100 MB). */
const MAX_HEADER = 100 * 1024 * 1024;

export class SafetensorsReader {
  readonly tensors = new Map<string, TensorInfo>();
  readonly metadata: Record<string, string> = {};
  private readonly dataStart: number;
  private fd: number | null;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
    const fileSize = fstatSync(fd).size;
    const fail = (msg: string): never => {
      this.close();
      throw new SafetensorsError(path, msg);
    };
    if (fileSize < 8) fail(`truncated: ${fileSize} bytes, shorter than the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > MAX_HEADER) fail(`header length ${headerLen} is implausible (corrupt file?)`);
    if (8 + headerLen > fileSize) fail(`truncated header: it declares ${headerLen} bytes but the file has only ${fileSize - 8} after the length`);
    const hdr = Buffer.alloc(headerLen);
    readSync(fd, hdr, 0, headerLen, 8);
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(hdr.toString('utf8')) as Record<string, unknown>;
    } catch (e) {
      fail(`header is not valid JSON (${(e as Error).message})`);
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) fail('header is not a JSON object');
    this.dataStart = 8 + headerLen;
    const dataSize = fileSize - this.dataStart;
    for (const [name, value] of Object.entries(json)) {
      if (name === '__metadata__') {
        if (value && typeof value === 'object') {
          for (const [k, v] of Object.entries(value as Record<string, unknown>)) this.metadata[k] = String(v);
        }
        continue;
      }
      const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (!v || typeof v !== 'object') fail(`tensor '${name}': entry is not an object`);
      const dtype = v.dtype as SafeDType;
      if (typeof dtype !== 'string' || !(dtype in DTYPE_SIZE)) fail(`tensor '${name}': unsupported dtype ${JSON.stringify(v.dtype)}`);
      const shape = v.shape;
      if (!Array.isArray(shape) || !shape.every((s) => Number.isInteger(s) && s >= 0)) fail(`tensor '${name}': invalid shape ${JSON.stringify(shape)}`);
      const offs = v.data_offsets;
      if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0)) fail(`tensor '${name}': invalid data_offsets`);
      const [begin, end] = offs as [number, number];
      const count = (shape as number[]).reduce((a, b) => a * b, 1);
      if (end - begin !== count * DTYPE_SIZE[dtype]) fail(`tensor '${name}': data_offsets span ${end - begin} bytes, but ${dtype}[${(shape as number[]).join(', ')}] needs ${count * DTYPE_SIZE[dtype]}`);
      if (end > dataSize) fail(`truncated: tensor '${name}' ends at byte ${end} of the data section, which has only ${dataSize} bytes`);
      this.tensors.set(name, { dtype, shape: shape as number[], begin, end });
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

  /** Raw bytes of one tensor. */
  readBytes(name: string): Buffer {
    if (this.fd === null) throw new SafetensorsError(this.path, 'file is closed');
    const t = this.info(name);
    const buf = Buffer.alloc(t.end - t.begin);
    let done = 0;
    while (done < buf.length) {
      const n = readSync(this.fd, buf, done, buf.length - done, this.dataStart + t.begin + done);
      if (n === 0) throw new SafetensorsError(this.path, `unexpected end of file reading '${name}'`);
      done += n;
    }
    return buf;
  }

  /** A floating-point tensor converted to float32 (F32, F16, BF16 and F64 are accepted). */
  readFloat32(name: string): Float32Array {
    const t = this.info(name);
    const b = this.readBytes(name);
    const n = (t.end - t.begin) / DTYPE_SIZE[t.dtype];
    const out = new Float32Array(n);
    switch (t.dtype) {
      case 'F32':
        for (let i = 0; i < n; i++) out[i] = b.readFloatLE(4 * i);
        break;
      case 'F64':
        for (let i = 0; i < n; i++) out[i] = b.readDoubleLE(8 * i);
        break;
      case 'F16':
        for (let i = 0; i < n; i++) out[i] = halfToFloat(b.readUInt16LE(2 * i));
        break;
      case 'BF16': {
        const u = new Uint32Array(out.buffer);
        for (let i = 0; i < n; i++) u[i] = b.readUInt16LE(2 * i) << 16;
        break;
      }
      default:
        throw new SafetensorsError(this.path, `tensor '${name}' has dtype ${t.dtype}, expected a floating-point type`);
    }
    return out;
  }

  readFloat64(name: string): Float64Array {
    const t = this.info(name);
    if (t.dtype !== 'F64') return Float64Array.from(this.readFloat32(name));
    const b = this.readBytes(name);
    const out = new Float64Array(b.length / 8);
    for (let i = 0; i < out.length; i++) out[i] = b.readDoubleLE(8 * i);
    return out;
  }

  readInt32(name: string): Int32Array {
    const t = this.info(name);
    const b = this.readBytes(name);
    if (t.dtype === 'I32') {
      const out = new Int32Array(b.length / 4);
      for (let i = 0; i < out.length; i++) out[i] = b.readInt32LE(4 * i);
      return out;
    }
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

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

export interface TensorToWrite {
  name: string;
  dtype: 'F32' | 'F64' | 'I32';
  shape: number[];
  data: Float32Array | Float64Array | Int32Array;
}

/** Serialises the header for `tensors` (in the given order) and returns it with each tensor's offset. */
export function encodeHeader(tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`tensor '${t.name}': shape [${t.shape.join(', ')}] has ${count} elements, data has ${t.data.length}`);
    const bytes = t.data.length * DTYPE_SIZE[t.dtype];
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
function bytesOf(a: Float32Array | Float64Array | Int32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Writes a safetensors file to an open descriptor. `onChunk` sees every byte written (for
 * checksums). The caller handles atomicity (write to a temporary name, fsync, rename).
 */
export function writeSafetensorsFd(fd: number, tensors: readonly TensorToWrite[], metadata?: Record<string, string>, onChunk?: (b: Buffer) => void): number {
  const head = encodeHeader(tensors, metadata);
  const chunks = [head, ...tensors.map((t) => bytesOf(t.data))];
  let total = 0;
  for (const c of chunks) {
    let done = 0;
    while (done < c.length) done += writeSync(fd, c, done, c.length - done);
    onChunk?.(c);
    total += c.length;
  }
  return total;
}
