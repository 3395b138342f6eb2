import type { z } from 'zod';

/** An error in something the user gave us (a config, a file, a flag): printed without a stack trace. */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

/** Formats zod issues as "field.path: message" lines, naming every offending field. */
export function formatZodIssues(issues: readonly z.core.$ZodIssue[], prefix = ''): string {
  return issues
    .map((i) => {
      const path = [prefix, ...i.path.map(String)].filter((s) => s !== '').join('.');
      if (i.code === 'unrecognized_keys') {
        const keys = (i as { keys: string[] }).keys;
        return `${path ? path + ': ' : ''}unknown field${keys.length > 1 ? 's' : ''} ${keys.map((k) => `'${k}'`).join(', ')}`;
      }
      return `${path || '(root)'}: ${i.message}`;
    })
    .join('\n');
}

/** Parses `value` with `schema`, throwing a UserError that names each invalid field. */
export function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, what: string, prefix = ''): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new UserError(`invalid ${what}:\n${formatZodIssues(r.error.issues, prefix)}`);
  return r.data;
}
