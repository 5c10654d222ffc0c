import { COMMAND_OPTIONS, parseCommandLine, UsageError } from '../../server/cli-args';

/** The CLI's argument parser alone: strict per command, no process, no home. */
describe('CLI argument parsing', () => {
  const refused = (argv: string[]): string => {
    try {
      parseCommandLine(argv);
    } catch (error) {
      expect(error).toBeInstanceOf(UsageError);
      return (error as Error).message;
    }
    throw new Error(`${argv.join(' ')} was accepted`);
  };

  it('reads each command with its options, repeated options in order, values inline or after', () => {
    const send = parseCommandLine(['send', 'SETUP_HSM', '--payload', '{"a":1}', '--secret', 'pin=stdin', '--secret=soPin=file:/f', '--json']);
    expect(send).toEqual({
      command: 'send',
      positional: ['SETUP_HSM'],
      flags: new Map([
        ['payload', ['{"a":1}']],
        ['secret', ['pin=stdin', 'soPin=file:/f']],
        ['json', ['true']],
      ]),
    });
    expect(parseCommandLine(['backup', 'verify', 'a.kwbak', '--passphrase-file', '/p']).positional).toEqual(['verify', 'a.kwbak']);
    expect(parseCommandLine(['inspect', '--history', '-1']).flags.get('history')).toEqual(['-1']);
    expect(parseCommandLine(['start', '--fresh-start', '--accept-older-store']).flags).toEqual(
      new Map([
        ['fresh-start', ['true']],
        ['accept-older-store', ['true']],
      ]),
    );
  });

  it('answers help for no command, help, --help and -h', () => {
    for (const argv of [[], ['help'], ['--help'], ['-h']]) expect(parseCommandLine(argv).command).toBe('help');
  });

  it('refuses an unknown option, naming it, the command and what the command takes', () => {
    expect(refused(['inspect', '--jsno'])).toBe('unknown option --jsno for `keyward inspect` (it takes --json, --history N)');
    expect(refused(['graph', '--json'])).toMatch(/^unknown option --json for `keyward graph`/);
    expect(refused(['exit-codes', '--all'])).toBe('unknown option --all for `keyward exit-codes` (it takes no options)');
    expect(refused(['send', 'CHOOSE_FRESH', '-j'])).toMatch(/^unknown option -j for `keyward send`/);
  });

  it('refuses a switch given a value, an option without one, and an unknown command', () => {
    expect(refused(['boot', '--json=false'])).toBe('--json takes no value');
    expect(refused(['backup', '--output'])).toBe('--output needs a value');
    expect(refused(['inspect', '--history'])).toBe('--history needs a value');
    expect(refused(['frobnicate'])).toBe('unknown command frobnicate');
  });

  it('takes every option the usage text documents, for its command', () => {
    // The usage text in server/cli.ts lists these; a command losing one would break scripts.
    const documented: Record<string, string[]> = {
      start: ['fresh-start', 'accept-older-store'],
      boot: ['json', 'fresh-start', 'accept-older-store'],
      inspect: ['json', 'history'],
      send: ['payload', 'secret', 'json'],
      graph: ['format', 'output'],
      backup: ['output', 'passphrase-file'],
      restore: ['input', 'passphrase-file'],
      drill: ['input', 'passphrase-file', 'backup-password-file'],
      audit: ['json'],
    };
    for (const [command, options] of Object.entries(documented)) expect(Object.keys(COMMAND_OPTIONS[command]!)).toEqual(expect.arrayContaining(options));
  });
});
