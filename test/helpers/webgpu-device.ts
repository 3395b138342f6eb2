/**
 * Opens the webgpu backend for tests: on Mesa's software Vulkan driver (lavapipe) unless
 * ADABATCH_TEST_GPU=1 asks for the machine's own GPU. Returns the backend, or the reason it cannot
 * (the tests then skip, saying why).
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { WebGpuBackend } from '../../src/backend/webgpu/index.js';

export const LAVAPIPE = '/usr/share/vulkan/icd.d/lvp_icd.json';

/** Points Vulkan at lavapipe (unless a real GPU is asked for); child processes inherit it. */
export function useTestDriver(): void {
  if (process.env.ADABATCH_TEST_GPU !== '1' && existsSync(LAVAPIPE)) process.env.VK_DRIVER_FILES ??= LAVAPIPE;
  process.env.XDG_RUNTIME_DIR ??= tmpdir();
}

export function openTestDevice(): { gpu: WebGpuBackend | null; skip: string | false } {
  useTestDriver();
  try {
    const gpu = new WebGpuBackend();
    // Synchronous: the device is destroyed while its worker thread is still healthy.
    process.on('exit', () => gpu.dispose());
    return { gpu, skip: false };
  } catch (e) {
    const why = `no WebGPU device here (${(e as Error).message}); scripts/setup.sh installs lavapipe (mesa-vulkan-drivers from bookworm-backports)`;
    console.log(`# skipping the webgpu tests: ${why}`);
    return { gpu: null, skip: why };
  }
}
