/**
 * The `adabatch` command: dispatches to one module per subcommand (src/cli/commands/<name>.ts, each
 * exporting `run(argv): Promise<number>` and a one-line `summary`). User errors print without a
 * stack trace and exit 2; other failures exit 1.
 */
import { UserError } from '../util/errors.js';

const COMMANDS = ['train', 'plan', 'eval', 'generate', 'tokenizer', 'data', 'report', 'sweep', 'checkpoint'] as const;

interface CommandModule {
  summary: string;
  run(argv: string[]): Promise<number>;
}

async function load(name: string): Promise<CommandModule | null> {
  try {
    return (await import(`./commands/${name}.js`)) as CommandModule;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((e as Error).message).includes(`commands/${name}.js`)) return null;
    throw e;
  }
}

async function usage(): Promise<string> {
  const lines = ['usage: adabatch <command> [options]', '', 'commands:'];
  for (const name of COMMANDS) {
    const mod = await load(name);
    if (mod) lines.push(`  ${name.padEnd(12)}${mod.summary}`);
  }
  lines.push('', 'Run `adabatch <command> --help` for the options of a command.');
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(await usage());
    return name ? 0 : 2;
  }
  if (name === '--version') {
    const { readFileSync } = await import('node:fs');
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    console.log(pkg.version);
    return 0;
  }
  const mod = (COMMANDS as readonly string[]).includes(name) ? await load(name) : null;
  if (!mod) {
    console.error(`adabatch: unknown command '${name}'\n\n${await usage()}`);
    return 2;
  }
  return mod.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UserError) {
      console.error(`adabatch: ${e.message}`);
      process.exitCode = 2;
    } else {
      console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
      process.exitCode = 1;
    }
  },
);
