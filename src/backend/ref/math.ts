/**
 * The reference kernels: plain loops over typed arrays, written to be read as the specification of
 * each operation. Every function works on Float32Array and Float64Array alike; intermediate
 * arithmetic is in JavaScript doubles and each stored value is rounded to the array's type.
 */
export type Floats = Float32Array | Float64Array;

export function matmul(c: Floats, a: Floats, b: Floats, m: number, n: number, k: number, transA: boolean, transB: boolean, alpha: number, beta: number): void {
  // a is m×k (or k×m when transA), b is k×n (or n×k when transB), c is m×n.
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        const av = transA ? a[p * m + i]! : a[i * k + p]!;
        const bv = transB ? b[j * k + p]! : b[p * n + j]!;
        s += av * bv;
      }
      c[i * n + j] = alpha * s + (beta === 0 ? 0 : beta * c[i * n + j]!);
    }
  }
}

export function rmsnormForward(out: Floats, rstd: Floats, x: Floats, w: Floats, rows: number, dim: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[o + i]! * x[o + i]!;
    const rs = 1 / Math.sqrt(ss / dim + eps);
    rstd[r] = rs;
    for (let i = 0; i < dim; i++) out[o + i] = x[o + i]! * rs * w[i]!;
  }
}

export function rmsnormBackward(dx: Floats, dw: Floats, dOut: Floats, x: Floats, w: Floats, rstd: Floats, rows: number, dim: number, accumulate: boolean): void {
  // y = x̂·w with x̂ = x·rstd.  dx = rstd·(dx̂ − x̂·mean(dx̂·x̂)), dx̂ = dy·w.
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const rs = rstd[r]!;
    let dot = 0;
    for (let i = 0; i < dim; i++) dot += dOut[o + i]! * w[i]! * x[o + i]! * rs;
    const mean = dot / dim;
    for (let i = 0; i < dim; i++) {
      const xhat = x[o + i]! * rs;
      dw[i] = dw[i]! + dOut[o + i]! * xhat;
      const g = rs * (dOut[o + i]! * w[i]! - xhat * mean);
      dx[o + i] = accumulate ? dx[o + i]! + g : g;
    }
  }
}

export function rope(x: Floats, cos: Floats, sin: Floats, rows: number, width: number, seqLen: number, nHeads: number, headDim: number, inverse: boolean): void {
  // Hugging Face rotate-half: y = x·cos + rotate_half(x)·sin, rotate_half([x1, x2]) = [−x2, x1].
  const half = headDim / 2;
  const sign = inverse ? -1 : 1;
  for (let r = 0; r < rows; r++) {
    const pos = r % seqLen;
    for (let h = 0; h < nHeads; h++) {
      const o = r * width + h * headDim;
      for (let i = 0; i < half; i++) {
        const c = cos[pos * half + i]!;
        const s = sign * sin[pos * half + i]!;
        const x1 = x[o + i]!;
        const x2 = x[o + i + half]!;
        x[o + i] = x1 * c - x2 * s;
        x[o + i + half] = x2 * c + x1 * s;
      }
    }
  }
}

interface Layout {
  batch: number;
  seqLen: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
}

/** Column offsets of head h's q, its kv group's k and v in a fused qkv row. */
function qkvColumns(d: Layout, h: number): [number, number, number] {
  const group = d.nHeads / d.nKvHeads; // query heads per kv head (Hugging Face repeat_kv)
  const kvh = Math.floor(h / group);
  return [h * d.headDim, (d.nHeads + kvh) * d.headDim, (d.nHeads + d.nKvHeads + kvh) * d.headDim];
}

export function attentionForward(out: Floats, lse: Floats, qkv: Floats, d: Layout): void {
  const { batch, seqLen: T, nHeads: H, headDim: hd } = d;
  const W = (H + 2 * d.nKvHeads) * hd;
  const scale = 1 / Math.sqrt(hd);
  const scores = new Float64Array(T);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      const [qc, kc, vc] = qkvColumns(d, h);
      for (let i = 0; i < T; i++) {
        const qo = (b * T + i) * W + qc;
        let max = -Infinity;
        for (let j = 0; j <= i; j++) {
          const ko = (b * T + j) * W + kc;
          let s = 0;
          for (let c = 0; c < hd; c++) s += qkv[qo + c]! * qkv[ko + c]!;
          scores[j] = s * scale;
          if (scores[j]! > max) max = scores[j]!;
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) sum += Math.exp(scores[j]! - max);
        const l = max + Math.log(sum);
        lse[(b * H + h) * T + i] = l;
        const oo = (b * T + i) * H * hd + h * hd;
        for (let c = 0; c < hd; c++) {
          let acc = 0;
          for (let j = 0; j <= i; j++) acc += Math.exp(scores[j]! - l) * qkv[(b * T + j) * W + vc + c]!;
          out[oo + c] = acc;
        }
      }
    }
  }
}

export function attentionBackward(dqkv: Floats, dOut: Floats, qkv: Floats, out: Floats, lse: Floats, d: Layout): void {
  const { batch, seqLen: T, nHeads: H, headDim: hd } = d;
  const W = (H + 2 * d.nKvHeads) * hd;
  const scale = 1 / Math.sqrt(hd);
  dqkv.fill(0);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      const [qc, kc, vc] = qkvColumns(d, h);
      for (let i = 0; i < T; i++) {
        const qo = (b * T + i) * W + qc;
        const oo = (b * T + i) * H * hd + h * hd;
        const l = lse[(b * H + h) * T + i]!;
        // D_i = Σ_c dOut_i·out_i equals Σ_j p_ij·dp_ij (the softmax backward's correction term).
        let D = 0;
        for (let c = 0; c < hd; c++) D += dOut[oo + c]! * out[oo + c]!;
        for (let j = 0; j <= i; j++) {
          const ko = (b * T + j) * W + kc;
          const vo = (b * T + j) * W + vc;
          let s = 0;
          let dp = 0;
          for (let c = 0; c < hd; c++) {
            s += qkv[qo + c]! * qkv[ko + c]!;
            dp += dOut[oo + c]! * qkv[vo + c]!;
          }
          const p = Math.exp(s * scale - l);
          const ds = p * (dp - D) * scale;
          for (let c = 0; c < hd; c++) {
            dqkv[qo + c] = dqkv[qo + c]! + ds * qkv[ko + c]!;
            dqkv[ko + c] = dqkv[ko + c]! + ds * qkv[qo + c]!;
            dqkv[vo + c] = dqkv[vo + c]! + p * dOut[oo + c]!;
          }
        }
      }
    }
  }
}

export function attentionDecode(out: Floats, qkv: Floats, kCache: Floats, vCache: Floats, pos: number, d: { batch: number; maxSeqLen: number; nHeads: number; nKvHeads: number; headDim: number }): void {
  const { batch, maxSeqLen: S, nHeads: H, nKvHeads: Hkv, headDim: hd } = d;
  const W = (H + 2 * Hkv) * hd;
  const kvW = Hkv * hd;
  const group = H / Hkv;
  const scale = 1 / Math.sqrt(hd);
  for (let b = 0; b < batch; b++) {
    const row = b * W;
    for (let c = 0; c < kvW; c++) {
      kCache[(b * S + pos) * kvW + c] = qkv[row + H * hd + c]!;
      vCache[(b * S + pos) * kvW + c] = qkv[row + (H + Hkv) * hd + c]!;
    }
    const scores = new Float64Array(pos + 1);
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      let max = -Infinity;
      for (let j = 0; j <= pos; j++) {
        let s = 0;
        for (let c = 0; c < hd; c++) s += qkv[row + h * hd + c]! * kCache[(b * S + j) * kvW + kvh * hd + c]!;
        scores[j] = s * scale;
        if (scores[j]! > max) max = scores[j]!;
      }
      let sum = 0;
      for (let j = 0; j <= pos; j++) sum += Math.exp(scores[j]! - max);
      for (let c = 0; c < hd; c++) {
        let acc = 0;
        for (let j = 0; j <= pos; j++) acc += Math.exp(scores[j]! - max) * vCache[(b * S + j) * kvW + kvh * hd + c]!;
        out[b * H * hd + h * hd + c] = acc / sum;
      }
    }
  }
}

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

export function swigluForward(h: Floats, gu: Floats, rows: number, ffn: number): void {
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < ffn; i++) {
      const g = gu[r * 2 * ffn + i]!;
      const u = gu[r * 2 * ffn + ffn + i]!;
      h[r * ffn + i] = g * sigmoid(g) * u;
    }
  }
}

export function swigluBackward(dgu: Floats, dh: Floats, gu: Floats, rows: number, ffn: number): void {
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < ffn; i++) {
      const g = gu[r * 2 * ffn + i]!;
      const u = gu[r * 2 * ffn + ffn + i]!;
      const s = sigmoid(g);
      const d = dh[r * ffn + i]!;
      dgu[r * 2 * ffn + i] = d * u * s * (1 + g * (1 - s));
      dgu[r * 2 * ffn + ffn + i] = d * g * s;
    }
  }
}

export interface HeadLossRef {
  x: Floats;
  normW: Floats;
  headW: Floats;
  targets: Int32Array;
  rows: number;
  dim: number;
  vocab: number;
  eps: number;
  grads?: { dx: Floats; dNormW: Floats; dHeadW: Floats; gradScale: number };
  /** bf16 GEMM operands: headW's bf16 copy; the normalised x and the logit gradients are rounded with `round`. */
  lowp?: { headW: Floats; round: (v: number) => number };
}

/**
 * Returns [Σ loss, count of counted tokens]. One row at a time: the logits of a single token only.
 * With `lowp`, the products read bf16 operands as the cpu backend's GEMMs do (x̂ rounded from its
 * float32 value, each logit gradient rounded from its float32 value), sums in float64.
 */
export function headLoss(a: HeadLossRef): [number, number] {
  const { x, normW, headW, targets, rows, dim, vocab, eps, lowp } = a;
  const W = lowp ? lowp.headW : headW;
  const xn = new Float64Array(dim);
  const logits = new Float64Array(vocab);
  const dxn = new Float64Array(dim);
  let lossSum = 0;
  let count = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const target = targets[r]!;
    if (target < 0) {
      if (a.grads) for (let i = 0; i < dim; i++) a.grads.dx[o + i] = 0;
      continue;
    }
    if (target >= vocab) throw new RangeError(`headLoss: target ${target} at row ${r} is outside the vocabulary (${vocab})`);
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[o + i]! * x[o + i]!;
    const rs = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) xn[i] = x[o + i]! * rs * normW[i]!;
    if (lowp) for (let i = 0; i < dim; i++) xn[i] = lowp.round(Math.fround(xn[i]!));
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) {
      let s = 0;
      for (let i = 0; i < dim; i++) s += W[v * dim + i]! * xn[i]!;
      logits[v] = s;
      if (s > max) max = s;
    }
    let sum = 0;
    for (let v = 0; v < vocab; v++) sum += Math.exp(logits[v]! - max);
    const lse = max + Math.log(sum);
    lossSum += lse - logits[target]!;
    count++;
    if (!a.grads) continue;
    const { dx, dNormW, dHeadW, gradScale } = a.grads;
    dxn.fill(0);
    for (let v = 0; v < vocab; v++) {
      let dl = (Math.exp(logits[v]! - lse) - (v === target ? 1 : 0)) * gradScale;
      if (lowp) dl = lowp.round(Math.fround(dl));
      for (let i = 0; i < dim; i++) {
        dHeadW[v * dim + i] = dHeadW[v * dim + i]! + dl * xn[i]!;
        dxn[i] = dxn[i]! + dl * W[v * dim + i]!;
      }
    }
    let dot = 0;
    for (let i = 0; i < dim; i++) dot += dxn[i]! * normW[i]! * x[o + i]! * rs;
    const mean = dot / dim;
    for (let i = 0; i < dim; i++) {
      const xhat = x[o + i]! * rs;
      dNormW[i] = dNormW[i]! + dxn[i]! * xhat;
      dx[o + i] = rs * (dxn[i]! * normW[i]! - xhat * mean);
    }
  }
  return [lossSum, count];
}

export function adamw(param: Floats, grad: Floats, m: Floats, v: Floats, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void {
  // torch.optim.AdamW: decoupled decay first, then the bias-corrected Adam update.
  const bc1 = 1 - Math.pow(beta1, step);
  const bc2 = 1 - Math.pow(beta2, step);
  const stepSize = lr / bc1;
  const sqrtBc2 = Math.sqrt(bc2);
  for (let i = 0; i < param.length; i++) {
    const g = grad[i]!;
    param[i] = param[i]! * (1 - lr * weightDecay);
    m[i] = beta1 * m[i]! + (1 - beta1) * g;
    v[i] = beta2 * v[i]! + (1 - beta2) * g * g;
    param[i] = param[i]! - (stepSize * m[i]!) / (Math.sqrt(v[i]!) / sqrtBc2 + eps);
  }
}

export function adagrad(param: Floats, grad: Floats, sum: Floats, lr: number, eps: number, weightDecay: number): void {
  // torch.optim.Adagrad (single-tensor path): L2 decay into the gradient, accumulate, then step.
  for (let i = 0; i < param.length; i++) {
    const g = grad[i]! + weightDecay * param[i]!;
    sum[i] = sum[i]! + g * g;
    param[i] = param[i]! - (lr * g) / (Math.sqrt(sum[i]!) + eps);
  }
}

export function lambDirection(param: Floats, grad: Floats, m: Floats, v: Floats, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void {
  // You et al. 2020, Algorithm 2: bias-corrected Adam ratio plus decoupled decay, written over grad.
  const bc1 = 1 - Math.pow(beta1, step);
  const sqrtBc2 = Math.sqrt(1 - Math.pow(beta2, step));
  for (let i = 0; i < param.length; i++) {
    const g = grad[i]!;
    m[i] = beta1 * m[i]! + (1 - beta1) * g;
    v[i] = beta2 * v[i]! + (1 - beta2) * g * g;
    grad[i] = m[i]! / bc1 / (Math.sqrt(v[i]!) / sqrtBc2 + eps) + weightDecay * param[i]!;
  }
}

export function muonMomentum(grad: Floats, buf: Floats, beta: number, nesterov: boolean): void {
  // KellerJordan/Muon muon_update: momentum.lerp_(grad, 1 − β); update = grad.lerp_(momentum, β) or momentum.
  for (let i = 0; i < grad.length; i++) {
    const g = grad[i]!;
    buf[i] = buf[i]! + (1 - beta) * (g - buf[i]!);
    grad[i] = nesterov ? g + beta * (buf[i]! - g) : buf[i]!;
  }
}
