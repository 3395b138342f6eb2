// Builds the native addon offline against the system Node headers (/usr/include/node), if present.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

if (!existsSync('native/binding.gyp')) {
  console.log('build-native: no native/binding.gyp, nothing to build');
  process.exit(0);
}
const r = spawnSync('npx', ['--no-install', 'node-gyp', 'rebuild', '--nodedir=/usr', '--directory=native'], { stdio: 'inherit' });
process.exit(r.status ?? 1);
