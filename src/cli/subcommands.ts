/**
 * Commands made of subcommands (`adabatch data prepare`, `adabatch tokenizer encode`): run the one
 * named first; no name prints the usage and fails (2), `--help` prints it and succeeds.
 */
import { UserError } from '../util/errors.js';

export type Subcommand = (argv: string[]) => Promise<number>;

export async function runSubcommand(command: string, usage: string, subcommands: Record<string, Subcommand>, argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    console.log(usage);
    return sub === undefined ? 2 : 0;
  }
  if (!Object.hasOwn(subcommands, sub)) throw new UserError(`${command}: unknown subcommand '${sub}'\n\n${usage}`);
  return subcommands[sub]!(rest);
}
