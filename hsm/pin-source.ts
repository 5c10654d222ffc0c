import { readFileSync } from 'node:fs';
import { KeyCustodyError } from '../errors/key-custody-error';

/**
 * Where a PIN comes from. Never a command-line argument: arguments are visible to every user of
 * the host through /proc and ps.
 */
export type PinSource = { file: string } | { env: string };

/**
 * How the database names a PIN source: "file:ABSOLUTE_PATH", "env:NAME", or "secrets:NAME" for a
 * file in the installation's secrets directory — so a database restored onto another host, with
 * another home, still finds its PIN file.
 */

export function readPin(source: PinSource): string {
  if ('file' in source) {
    let text: string;
    try {
      text = readFileSync(source.file, 'utf8');
    } catch (error) {
      throw new KeyCustodyError('PIN_MISSING', `PIN file ${source.file} cannot be read`, { cause: error });
    }
    const pin = text.replace(/\r?\n$/, '');
    if (pin.length === 0) throw new KeyCustodyError('PIN_MISSING', `PIN file ${source.file} is empty`);
    return pin;
  }
  const pin = process.env[source.env];
  if (pin === undefined || pin.length === 0) {
    throw new KeyCustodyError('PIN_MISSING', `environment variable ${source.env} holds no PIN`);
  }
  return pin;
}

export function describePinSource(source: PinSource): string {
  return 'file' in source ? `file:${source.file}` : `env:${source.env}`;
}

export function parsePinSource(text: string, secretsDir?: string): PinSource {
  if (text.startsWith('secrets:')) {
    const name = text.slice('secrets:'.length);
    if (!secretsDir || !/^[A-Za-z0-9._-]+$/.test(name) || name.startsWith('.')) throw new Error(`PIN source "${text}" needs a plain file name and a secrets directory`);
    return { file: `${secretsDir}/${name}` };
  }
  if (text.startsWith('file:')) return { file: text.slice(5) };
  if (text.startsWith('env:')) return { env: text.slice(4) };
  throw new Error(`PIN source "${text}" must be file:PATH, env:NAME or secrets:NAME`);
}
