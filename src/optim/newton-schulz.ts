/**
 * Muon's orthogonalisation: the quintic Newton–Schulz iteration of KellerJordan/Muon
 * (zeropower_via_newtonschulz5), in float32 through Backend.matmul:
 *   X ← G/(‖G‖_F + 1e-7)
 *   repeat `steps` times:  A = XXᵀ,  B = bA + cA²,  X ← aX + BX      (a, b, c) = (3.4445, −4.7750, 2.0315)
 * which drives every singular value of G towards ~1 (into roughly [0.7, 1.2]) while keeping its
 * singular vectors. The reference transposes a tall G so that A is the small Gram matrix; here a tall
 * G (rows > cols) uses A = XᵀX and X ← aX + XB instead, the same polynomial in exact arithmetic
 * ((XXᵀ)ᵏX = X(XᵀX)ᵏ), with no transpose. Per step: 3 GEMMs around an r×r Gram matrix, r = min(rows, cols),
 * i.e. 2·r²·c + r³ multiply-adds for an r×c matrix.
 */
import type { Backend, Tensor } from '../backend/backend.js';

export const NS_COEFFICIENTS = [3.4445, -4.775, 2.0315] as const;

export class NewtonSchulz {
  /** Scratch by shape, reused across steps (X, Y: the matrix; A, B: the Gram matrix). */
  private readonly scratch = new Map<string, { x: Tensor; y: Tensor; a: Tensor; b: Tensor }>();
  private readonly norm: Tensor;

  constructor(private readonly backend: Backend) {
    this.norm = backend.alloc([1], 'f64');
  }

  /**
   * Orthogonalises the rows × cols matrix `g` (row-major) and returns a scratch tensor holding the
   * result, valid until the next call with the same shape.
   */
  run(g: Tensor, rows: number, cols: number, steps: number): Tensor {
    const backend = this.backend;
    const [a, b, c] = NS_COEFFICIENTS;
    const s = this.buffers(rows, cols);
    backend.fill(this.norm, 0);
    backend.sumSquares(g, this.norm, 0);
    const frob = Math.sqrt(backend.download(this.norm)[0]!);
    let x = s.x;
    let y = s.y;
    backend.copy(x, g);
    backend.scale(x, 1 / (frob + 1e-7));
    const tall = rows > cols;
    for (let i = 0; i < steps; i++) {
      // A = XXᵀ (wide) or XᵀX (tall); B = bA + cA².
      backend.matmul(s.a, x, x, tall, !tall);
      backend.copy(s.b, s.a);
      backend.matmul(s.b, s.a, s.a, false, false, c, b);
      // Y = aX + BX (wide) or aX + XB (tall).
      backend.copy(y, x);
      if (tall) backend.matmul(y, x, s.b, false, false, 1, a);
      else backend.matmul(y, s.b, x, false, false, 1, a);
      [x, y] = [y, x];
    }
    return x;
  }

  private buffers(rows: number, cols: number): { x: Tensor; y: Tensor; a: Tensor; b: Tensor } {
    const key = `${rows}x${cols}`;
    let s = this.scratch.get(key);
    if (!s) {
      const r = Math.min(rows, cols);
      const alloc = (shape: number[]): Tensor => this.backend.alloc(shape);
      s = { x: alloc([rows, cols]), y: alloc([rows, cols]), a: alloc([r, r]), b: alloc([r, r]) };
      this.scratch.set(key, s);
    }
    return s;
  }

  free(): void {
    for (const s of this.scratch.values()) for (const t of [s.x, s.y, s.a, s.b]) this.backend.free(t);
    this.scratch.clear();
    this.backend.free(this.norm);
  }
}
