import { parseArgs } from 'node:util';
import { KeywardError } from '../errors/keyward-error';

/** A command line keyward cannot run: the CLI prints the message and the usage, and exits 2. */
export class UsageError extends KeywardError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

interface OptionSpec {
  type: 'string' | 'boolean';
  /** Shown in the refusal message: what the value is. */
  value?: string;
  multiple?: boolean;
}

const json: OptionSpec = { type: 'boolean' };
const file: OptionSpec = { type: 'string', value: 'FILE' };
// --source names the sender in the transition log (scripts set it); not in the help text.
const source: OptionSpec = { type: 'string', value: 'NAME' };
const storeOptions = { 'fresh-start': { type: 'boolean' }, 'accept-older-store': { type: 'boolean' } } satisfies Record<string, OptionSpec>;

/** The options each command takes (the usage text shows them): any other is refused. */
export const COMMAND_OPTIONS: Readonly<Record<string, Readonly<Record<string, OptionSpec>>>> = {
  help: {},
  'exit-codes': {},
  start: storeOptions,
  boot: { json, source, ...storeOptions },
  inspect: { json, history: { type: 'string', value: 'N' } },
  send: { payload: { type: 'string', value: 'JSON' }, secret: { type: 'string', value: 'NAME=stdin|file:PATH|env:VAR', multiple: true }, json, source },
  graph: { format: { type: 'string', value: 'dot|mermaid|json' }, output: file },
  backup: { output: file, 'passphrase-file': file, json },
  restore: { input: file, 'passphrase-file': file, json },
  drill: { input: file, 'passphrase-file': file, 'backup-password-file': file, json },
  audit: { json },
  rotate: { json, source },
  password: { 'current-password-file': file, 'password-file': file, admin: { type: 'string', value: 'USERNAME' }, 'admin-password-file': file, json, source },
  pin: { 'pin-file': file, json, source },
  kek: { module: { type: 'string', value: 'PATH' }, 'token-label': { type: 'string', value: 'LABEL' }, 'pin-file': file, json, source },
  'recovery-shares': { shares: { type: 'string', value: 'N' }, threshold: { type: 'string', value: 'K' }, json, source },
};

export interface ParsedCommandLine {
  command: string;
  positional: string[];
  /** Each option given, with its values in order (a boolean option's value is 'true'). */
  flags: Map<string, string[]>;
}

const describe = (options: Readonly<Record<string, OptionSpec>>): string =>
  Object.entries(options)
    .map(([name, spec]) => (spec.type === 'string' ? `--${name} ${spec.value ?? 'VALUE'}` : `--${name}`))
    .join(', ') || 'no options';

/**
 * node:util parseArgs, strict per command: an unknown option, a value given to a switch or an option
 * missing its value is a UsageError naming it (never silently ignored: `--jsno` is not `--json`).
 */
export function parseCommandLine(argv: readonly string[]): ParsedCommandLine {
  const [first = 'help', ...rest] = argv;
  const command = first === '--help' || first === '-h' ? 'help' : first;
  if (!Object.hasOwn(COMMAND_OPTIONS, command)) throw new UsageError(`unknown command ${command}`);
  const options = COMMAND_OPTIONS[command]!;
  // Not parseArgs' own strict mode: its messages name neither the command nor what it takes.
  const { tokens } = parseArgs({
    args: [...rest],
    options: Object.fromEntries(Object.entries(options).map(([name, spec]) => [name, { type: spec.type, multiple: spec.multiple ?? false }])),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const positional: string[] = [];
  const flags = new Map<string, string[]>();
  for (const token of tokens) {
    if (token.kind === 'positional') positional.push(token.value);
    if (token.kind !== 'option') continue;
    const spec = Object.hasOwn(options, token.name) ? options[token.name] : undefined;
    if (!spec || !token.rawName.startsWith('--')) throw new UsageError(`unknown option ${token.rawName} for \`keyward ${command}\` (it takes ${describe(options)})`);
    if (spec.type === 'boolean' && token.value !== undefined) throw new UsageError(`--${token.name} takes no value`);
    if (spec.type === 'string' && token.value === undefined) throw new UsageError(`--${token.name} needs a value`);
    flags.set(token.name, [...(flags.get(token.name) ?? []), token.value ?? 'true']);
  }
  return { command, positional, flags };
}
