/**
 * The elementwise optimizer kernels besides AdamW (head-optim.ts): AdaGrad (torch.optim.Adagrad),
 * LAMB's direction (You et al. 2020) and Muon's momentum (KellerJordan/Muon), one grid-strided pass
 * each, with their per-step constants computed in float64 on the host. Each pass writes several
 * tensors, and a dispatch may not bind one allocation twice when one binding writes: the tensors
 * must be distinct allocations (the engines' unit buffers are), else the call is refused.
 */
import type { AdagradParams, LambParams, MuonMomentumParams, Tensor } from '../../backend.js';
import { BackendArgumentError } from '../../checks.js';
import { FLAT_LOOP, flatGroups, kernel, params, type GpuContext } from './common.js';


function distinct(kernelName: string, named: ReadonlyArray<readonly [string, Tensor]>): void {
  for (const [n, t] of named) if (t.dtype !== 'f32') throw new BackendArgumentError(kernelName, `${n} must be f32 on the webgpu backend, got ${t.dtype}`);
  for (let i = 0; i < named.length; i++) {
    for (let j = i + 1; j < named.length; j++) {
      if (named[i]![1].buffer === named[j]![1].buffer) throw new BackendArgumentError(kernelName, `${named[i]![0]} and ${named[j]![0]} must be distinct allocations on the webgpu backend`);
    }
  }
}

const ADAGRAD = kernel(
  'adagrad',
  /* wgsl */ `
struct P { n: u32, lr: f32, eps: f32, wd: f32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> sum: array<f32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;
${FLAT_LOOP}
    let w = param[o(0u) + i];
    let gr = grad[o(2u) + i] + p.wd * w;
    let s = sum[o(1u) + i] + gr * gr;
    sum[o(1u) + i] = s;
    param[o(0u) + i] = w - p.lr * gr / (sqrt(s) + p.eps);
  }
}`,
);

/** Backend.adagrad; the caller has validated p. */
export function adagrad(ctx: GpuContext, param: Tensor, grad: Tensor, sum: Tensor, p: AdagradParams): void {
  distinct('adagrad', [['param', param], ['grad', grad], ['sum', sum]]);
  const n = param.size;
  if (n === 0) return;
  ctx.dispatch(ADAGRAD, params(['u', n], ['f', p.lr], ['f', p.eps], ['f', p.weightDecay]), [{ t: param, write: true }, { t: sum, write: true }, { t: grad }], flatGroups(ctx, n));
}

const LAMB = kernel(
  'lambDirection',
  /* wgsl */ `
struct P { n: u32, b1: f32, omb1: f32, b2: f32, omb2: f32, invBc1: f32, sqrtBc2: f32, eps: f32, wd: f32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> param: array<f32>;
${FLAT_LOOP}
    let gr = grad[o(0u) + i];
    let mm = p.b1 * m[o(1u) + i] + p.omb1 * gr;
    let vv = p.b2 * v[o(2u) + i] + p.omb2 * gr * gr;
    m[o(1u) + i] = mm;
    v[o(2u) + i] = vv;
    grad[o(0u) + i] = mm * p.invBc1 / (sqrt(vv) / p.sqrtBc2 + p.eps) + p.wd * param[o(3u) + i];
  }
}`,
);

/** Backend.lambDirection; the caller has validated p. */
export function lambDirection(ctx: GpuContext, param: Tensor, grad: Tensor, m: Tensor, v: Tensor, p: LambParams): void {
  distinct('lambDirection', [['param', param], ['grad', grad], ['m', m], ['v', v]]);
  const n = param.size;
  if (n === 0) return;
  const invBc1 = 1 / (1 - Math.pow(p.beta1, p.step));
  const sqrtBc2 = Math.sqrt(1 - Math.pow(p.beta2, p.step));
  const pr = params(['u', n], ['f', p.beta1], ['f', 1 - p.beta1], ['f', p.beta2], ['f', 1 - p.beta2], ['f', invBc1], ['f', sqrtBc2], ['f', p.eps], ['f', p.weightDecay]);
  ctx.dispatch(LAMB, pr, [{ t: grad, write: true }, { t: m, write: true }, { t: v, write: true }, { t: param }], flatGroups(ctx, n));
}

const MUON = kernel(
  'muonMomentum',
  /* wgsl */ `
struct P { n: u32, beta: f32, omb: f32, nesterov: u32 };
@group(0) @binding(1) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> buf: array<f32>;
${FLAT_LOOP}
    let gr = grad[o(0u) + i];
    let b = buf[o(1u) + i] + p.omb * (gr - buf[o(1u) + i]);
    buf[o(1u) + i] = b;
    grad[o(0u) + i] = select(b, gr + p.beta * (b - gr), p.nesterov != 0u);
  }
}`,
);

/** Backend.muonMomentum; the caller has validated p. */
export function muonMomentum(ctx: GpuContext, grad: Tensor, buf: Tensor, p: MuonMomentumParams): void {
  distinct('muonMomentum', [['grad', grad], ['buf', buf]]);
  const n = grad.size;
  if (n === 0) return;
  ctx.dispatch(MUON, params(['u', n], ['f', p.beta], ['f', 1 - p.beta], ['u', p.nesterov ? 1 : 0]), [{ t: grad, write: true }, { t: buf, write: true }], flatGroups(ctx, n));
}
