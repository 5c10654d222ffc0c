import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ScriptExitCode {
  code: number;
  name: string;
  message: string;
}

/** scripts/exit-codes.tsv, the one table the scripts exit by and keyward explains from. */
export function loadScriptExitCodes(scriptsDir: string): ScriptExitCode[] {
  return readFileSync(join(scriptsDir, 'exit-codes.tsv'), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .map((line) => {
      const [code, name, message] = line.split('\t');
      return { code: Number(code), name: name!, message: message! };
    });
}

export function describeScriptExit(scriptsDir: string, code: number | null, signal: string | null = null): ScriptExitCode {
  if (code === null) return { code: -1, name: 'KILLED', message: `the script was stopped by signal ${signal ?? 'unknown'}` };
  return loadScriptExitCodes(scriptsDir).find((entry) => entry.code === code) ?? { code, name: 'UNKNOWN', message: `the script failed with exit code ${code}, which is not in scripts/exit-codes.tsv` };
}
