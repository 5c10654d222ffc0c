#!/usr/bin/env node
import './young-generation';
import { readFileSync, writeFileSync } from 'node:fs';
import { safeErrorMessage } from '../db/driver-errors';
import { acceptStore, writeMark } from '../db/high-water-mark';
import { parseCommandLine, ParsedCommandLine, UsageError } from './cli-args';
import { guardHome } from './home-guard';
import { EXIT, exitCodeFor } from './exit-codes';
import { asKeywardError, EXIT_CODES } from '../errors/keyward-error';
import { KeyCustodyError } from '../errors/key-custody-error';
import type { SendResult } from './lifecycle-engine';
import type { KeywardRuntime } from './runtime';

/**
 * Loaded only by the commands that need them: `boot` and `send` start faster without the web stack,
 * and `help` and `exit-codes` without the runtime (knex, the machine, the token) or the schemas (zod).
 */
const lazy = {
  config: () => (require('./config') as typeof import('./config')).loadConfig,
  runtime: () => (require('./runtime') as typeof import('./runtime')).KeywardRuntime,
  engine: () => require('./lifecycle-engine') as typeof import('./lifecycle-engine'),
  graph: () => require('../machines/graph') as typeof import('../machines/graph'),
  serve: () => (require('./serve') as typeof import('./serve')).serve,
  drill: () => require('./drill') as typeof import('./drill'),
  drillReport: () => (require('../effects/restore-drill') as typeof import('../effects/restore-drill')).formatDrillReport,
  capabilities: () => require('../hsm/token-capabilities') as typeof import('../hsm/token-capabilities'),
  nodes: () => (require('./node-health') as typeof import('./node-health')).listNodes,
  verifyArchive: () => (require('../backup') as typeof import('../backup')).verifyArchive,
};

/**
 * keyward's command line. Every lifecycle change goes through the engine as an event; secrets are
 * read from stdin, a file or an environment variable, never from an argument.
 */
const USAGE = `usage: keyward <command> [options]

  start [--fresh-start] [--accept-older-store]
                             boot, then serve HTTPS (KEYWARD_HOST:KEYWARD_PORT); one server per home
  boot [--json] [--fresh-start] [--accept-older-store]
                             probe the real situation and send BOOT
                             --fresh-start: begin anew although the database is missing or empty
                             beside an install's token, PIN file or TLS directory
                             --accept-older-store: accept a database behind the home's high-water mark
  inspect [--json] [--history N]
                             the state, the wizard state, the scenario, the events accepted now
  send EVENT [--payload JSON] [--secret NAME=stdin|file:PATH|env:VAR]... [--json]
                             send one event; secrets never as arguments
  graph [--format dot|mermaid|json] [--output FILE]
                             the machine's graph with the current state marked
  backup --output FILE [--passphrase-file F]
                             one encrypted archive of the store, while the server runs
  backup verify FILE [--passphrase-file F]
                             decrypt, list and check an archive; restores nothing
  restore --input FILE [--passphrase-file F]
                             the archive replaces the store (moved to quarantine), then BOOT
  drill --input FILE [--passphrase-file F] [--backup-password-file G]
                             restore onto a scratch store with a fresh token, prove a secret
                             decrypts, report the RTO, destroy the scratch store
  audit verify [--json]      check the hash chains of the transition log and the device audit
  rotate kek|dek [--json]    a new KEK in the token (the DEKs re-wrapped, the old KEK destroyed), or a
                             new DEK (every value re-encrypted, with a progress bar; the old DEK
                             retired); the server keeps serving
  password change [--current-password-file F] [--password-file G]
  password change --admin USERNAME [--admin-password-file F] [--password-file G]
                             a new backup password; authorized by the current one or by an
                             administrator's password; the old one stops working
  pin change [--pin-file F]  a new user PIN on the token, and in keyward's PIN file
  kek add-second --module PATH --token-label LABEL [--pin-file F]
                             a second KEK in another token also wraps every DEK: either KEK then
                             unwraps the keyset at start-up
  kek remove-second          the second KEK's wraps deleted, its key destroyed
  recovery-shares create --shares N --threshold K [--json]
                             a new recovery key split into N shares, K needed, printed once (the
                             old set stops working); every live DEK gets a copy sealed to it
  recovery-shares verify     check one share (from stdin) against the current set; changes nothing
  send SUBMIT_RECOVERY_SHARE in auto-restore, recovery shares from stdin, one per line, until K are in
                             (shares live only in the memory of the process that received them)
Secrets (passphrase, backup password) not given in a file are read from stdin, one per line.
  exit-codes                 the table of exit codes

exit codes: ${Object.values(EXIT_CODES)
  .map(({ exit, meaning }) => `\n  ${exit}  ${meaning}`)
  .join('')}
`;

type Parsed = ParsedCommandLine;

const flag = (parsed: Parsed, name: string): string | undefined => parsed.flags.get(name)?.at(-1);

/** Secrets named on the command line by where to read them, never by value. */
function readSecrets(specs: string[]): Record<string, string> {
  const secrets: Record<string, string> = {};
  let stdinUsed = false;
  for (const spec of specs) {
    const match = /^([A-Za-z][A-Za-z0-9]*)=(stdin|file:.+|env:.+)$/.exec(spec);
    if (!match) throw new UsageError(`--secret takes NAME=stdin, NAME=file:PATH or NAME=env:VAR (a value on the command line would be visible to every user of the host)`);
    const [, name, source] = match as unknown as [string, string, string];
    let value: string;
    if (source === 'stdin') {
      if (stdinUsed) throw new UsageError('only one secret can come from stdin');
      stdinUsed = true;
      value = readFileSync(0, 'utf8');
    } else if (source.startsWith('file:')) {
      try {
        value = readFileSync(source.slice(5), 'utf8');
      } catch {
        throw new UsageError(`the file for secret "${name}" cannot be read: ${source.slice(5)}`);
      }
    } else {
      value = process.env[source.slice(4)] ?? '';
    }
    secrets[name] = value.replace(/\r?\n$/, '');
  }
  return secrets;
}

/** Named secrets from --NAME-file options, the rest from stdin, one per line, in order. */
function readNamedSecrets(parsed: Parsed, names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const fromStdin: string[] = [];
  for (const name of names) {
    const file = flag(parsed, `${name}-file`);
    if (file === undefined) {
      fromStdin.push(name);
      continue;
    }
    try {
      out[name] = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch {
      throw new UsageError(`--${name}-file ${file} cannot be read`);
    }
  }
  if (fromStdin.length > 0) {
    const lines = readFileSync(0, 'utf8').split(/\r?\n/);
    fromStdin.forEach((name, index) => (out[name] = lines[index] ?? ''));
  }
  for (const name of names) if (!out[name]) throw new UsageError(`the ${name} is empty: give it in --${name}-file or on stdin`);
  return out;
}

function progressPrinter(label: string): (progress: { bytes: number }) => void {
  let last = 0;
  return ({ bytes }) => {
    if (bytes - last < 8 * 1024 * 1024) return;
    last = bytes;
    process.stderr.write(`keyward: ${label} ${(bytes / 1048576).toFixed(0)} MiB\n`);
  };
}

function print(result: SendResult, json: boolean): number {
  const code = exitCodeFor(result.outcome, result.state);
  if (json) {
    process.stdout.write(`${JSON.stringify({ ...result, exitCode: code })}\n`);
  } else {
    const where = result.wizardState ? `${result.state} (${result.wizardState})` : result.state;
    process.stdout.write(`${result.outcome}: ${where}${result.revision !== null ? `, revision ${result.revision}` : ''}\n`);
    if (result.message) process.stderr.write(`keyward: ${result.message}\n`);
  }
  return code;
}

/**
 * The DEK re-encryption job's progress on stderr: a bar redrawn in place on a terminal, a line per
 * tenth otherwise (logs, CI). Values per second from the start of this process's run.
 */
function progressBar(): (effect: string, report: { done: number; total: number; unit: string }) => void {
  const started = Date.now();
  let lastTenth = -1;
  return (_effect, { done, total, unit }) => {
    const fraction = total > 0 ? Math.min(1, done / total) : 1;
    const rate = Math.round(done / Math.max(0.001, (Date.now() - started) / 1000));
    const line = `re-encrypting [${'#'.repeat(Math.round(fraction * 30)).padEnd(30, '.')}] ${Math.floor(fraction * 100)}% ${done}/${total} ${unit}, ${rate}/s`;
    if (process.stderr.isTTY) {
      process.stderr.write(`\r${line}${fraction === 1 ? '\n' : ''}`);
    } else if (Math.floor(fraction * 10) > lastTenth) {
      lastTenth = Math.floor(fraction * 10);
      process.stderr.write(`keyward: ${line}\n`);
    }
  };
}

/** Crash tests and drills: KEYWARD_CRASH_AT=effect:checkpoint stops here until the process is killed. */
function checkpointHook(): ((name: string) => Promise<void>) | undefined {
  const target = process.env.KEYWARD_CRASH_AT;
  if (!target) return undefined;
  return async (name) => {
    if (name !== target) return;
    process.stderr.write(`keyward: paused at checkpoint ${name} (KEYWARD_CRASH_AT)\n`);
    await new Promise(() => {});
  };
}

async function main(argv: string[]): Promise<number> {
  const parsed = parseCommandLine(argv);
  const json = parsed.flags.has('json');
  if (parsed.command === 'help') {
    process.stdout.write(USAGE);
    return EXIT.OK;
  }
  if (parsed.command === 'exit-codes') {
    for (const { exit, meaning } of Object.values(EXIT_CODES)) process.stdout.write(`${exit}\t${meaning}\n`);
    return EXIT.OK;
  }

  if (parsed.command === 'drill') {
    const input = flag(parsed, 'input');
    if (!input) throw new UsageError('drill needs --input FILE');
    const given = readNamedSecrets(parsed, ['passphrase', 'backup-password']);
    const report = await lazy.drill().drill(input, given.passphrase!, given['backup-password']!);
    process.stdout.write(json ? `${JSON.stringify(report)}\n` : lazy.drillReport()(report));
    return report.ok && report.scratchDestroyed ? EXIT.OK : EXIT.DRILL_FAILED;
  }

  const config = lazy.config()();
  const boots = parsed.command === 'start' || parsed.command === 'boot';
  const freshStart = boots && parsed.flags.has('fresh-start');
  // Before the store is opened (opening creates an empty SQLite file): recover, clean up, refuse a vanished store.
  // The wizard's RESTORE_BACKUP swaps the store as `restore` does: neither runs beside a server.
  const restores = parsed.command === 'restore' || (parsed.command === 'send' && parsed.positional[0] === 'RESTORE_BACKUP');
  const guard = await guardHome(config, { hold: parsed.command === 'start' ? 'server' : restores ? 'restore' : null, boots, freshStart });
  for (const note of guard.notes) process.stderr.write(`keyward: ${note}\n`);
  let runtime: KeywardRuntime;
  const KeywardRuntime = lazy.runtime();
  try {
    runtime = new KeywardRuntime(config, { onCheckpoint: checkpointHook(), onProgress: progressBar() });
  } catch (error) {
    guard.lock?.release();
    throw error;
  }
  let serving = false;
  try {
    if (boots) await storeAcceptance(runtime, { freshStart, acceptOlder: parsed.flags.has('accept-older-store') });
    switch (parsed.command) {
      case 'backup': {
        if (parsed.positional[0] === 'verify') {
          const file = parsed.positional[1];
          if (!file) throw new UsageError('backup verify needs FILE');
          const { passphrase } = readNamedSecrets(parsed, ['passphrase']);
          const verified = await lazy.verifyArchive()(file, passphrase!, { onProgress: ({ bytes }) => progressPrinter('verified')({ bytes }), kdfCeiling: runtime.config.kdfCeiling });
          if (json) process.stdout.write(`${JSON.stringify(verified)}\n`);
          else {
            const m = verified.manifest;
            process.stdout.write(
              [
                `archive ${file}: intact`,
                `made ${m.createdAt} on ${m.host.hostname} by keyward ${m.keywardVersion}, schema ${m.schemaVersion}, ${m.databaseEngine} database`,
                `transition log chain head: ${m.logChainHead ?? '-'} (revision ${m.extras.logChainHeadRevision === undefined || m.extras.logChainHeadRevision === null ? '-' : Number(m.extras.logChainHeadRevision)})`,
                ...verified.entries.map((e) => `  ${e.ok ? 'ok' : 'BAD'}  ${e.sha256}  ${String(e.size).padStart(10)}  ${e.name}`),
              ].join('\n') + '\n',
            );
          }
          return verified.entries.every((e) => e.ok) ? EXIT.OK : EXIT.MANIFEST_MISMATCH;
        }
        const output = flag(parsed, 'output');
        if (!output) throw new UsageError('backup needs --output FILE');
        const { passphrase } = readNamedSecrets(parsed, ['passphrase']);
        const result = await runtime.backup(output, passphrase!, progressPrinter('archived'));
        process.stdout.write(
          json
            ? `${JSON.stringify({ path: result.path, size: result.size, manifest: result.manifest })}\n`
            : `archive ${result.path}: ${result.size} bytes, ${result.manifest.entries.length} entries, log head ${result.manifest.logChainHead ?? '-'}${result.logChainIntact ? '' : ' (the log chain was broken when this was taken)'}\n`,
        );
        return EXIT.OK;
      }
      case 'restore': {
        const input = flag(parsed, 'input');
        if (!input) throw new UsageError('restore needs --input FILE');
        // The database file is moved aside: a server using it holds the home lock, and the guard refused.
        const { passphrase } = readNamedSecrets(parsed, ['passphrase']);
        const { report, boot } = await runtime.restore(input, passphrase!, (message) => process.stderr.write(`keyward: ${message}\n`));
        process.stdout.write(`restored ${input} (made ${report.manifest.createdAt} on ${report.manifest.host.hostname}); the replaced store is in ${report.quarantine}\n`);
        return print(boot, json);
      }
      case 'audit': {
        if (parsed.positional[0] !== 'verify') throw new UsageError('audit takes: verify');
        const verdict = await runtime.audit();
        const { deviceAudit } = verdict;
        if (json) process.stdout.write(`${JSON.stringify(verdict)}\n`);
        else {
          if (verdict.firstBroken) process.stdout.write(`transition log BROKEN at revision ${verdict.firstBroken.revision}: ${verdict.firstBroken.message}\n`);
          else
            process.stdout.write(
              `transition log intact: ${verdict.rows} rows${verdict.unverifiedRows ? ` (${verdict.unverifiedRows} keyed rows not verifiable without the DEK)` : ''}, head ${verdict.head?.hash ?? '-'}\n`,
            );
          if (deviceAudit?.firstBroken) process.stdout.write(`device audit BROKEN at entry ${deviceAudit.firstBroken.seq}: ${deviceAudit.firstBroken.message}\n`);
          else if (deviceAudit) process.stdout.write(`device audit intact: ${deviceAudit.entries} ${deviceAudit.entries === 1 ? 'entry' : 'entries'}\n`);
        }
        return verdict.ok ? EXIT.OK : EXIT.AUDIT_BROKEN;
      }
      case 'boot': {
        const result = await runtime.boot(flag(parsed, 'source') ?? 'cli');
        if (result.outcome === 'startup_refused') process.stderr.write(`keyward: ${result.message}\n`);
        const code = print(result, json);
        // A rotation a crash interrupted is finished now, as `keyward start` does in the background.
        const resumed = code === EXIT.OK ? await runtime.resumeKeyRotation(flag(parsed, 'source') ?? 'cli') : null;
        return resumed ? print(resumed, json) : code;
      }
      case 'rotate': {
        const [what] = parsed.positional;
        if (what !== 'kek' && what !== 'dek') throw new UsageError('rotate takes: kek or dek');
        return print(await runtime.send(what === 'kek' ? 'ROTATE_KEK' : 'ROTATE_DEK', {}, {}, flag(parsed, 'source') ?? 'cli'), json);
      }
      case 'password': {
        if (parsed.positional[0] !== 'change') throw new UsageError('password takes: change');
        const admin = flag(parsed, 'admin');
        const given = readNamedSecrets(parsed, admin ? ['admin-password', 'password'] : ['current-password', 'password']);
        const secrets: Record<string, string> = admin
          ? { adminPassword: given['admin-password']!, password: given.password! }
          : { currentPassword: given['current-password']!, password: given.password! };
        const payload = admin ? { authorizeWith: 'admin', username: admin } : { authorizeWith: 'backup_password' };
        return print(await runtime.send('CHANGE_BACKUP_PASSWORD', payload, secrets, flag(parsed, 'source') ?? 'cli'), json);
      }
      case 'pin': {
        if (parsed.positional[0] !== 'change') throw new UsageError('pin takes: change');
        const { pin } = readNamedSecrets(parsed, ['pin']);
        return print(await runtime.send('CHANGE_TOKEN_PIN', {}, { pin: pin! }, flag(parsed, 'source') ?? 'cli'), json);
      }
      case 'kek': {
        const [what] = parsed.positional;
        if (what === 'remove-second') return print(await runtime.send('REMOVE_SECOND_KEK', {}, {}, flag(parsed, 'source') ?? 'cli'), json);
        if (what !== 'add-second') throw new UsageError('kek takes: add-second or remove-second');
        const modulePath = flag(parsed, 'module');
        const label = flag(parsed, 'token-label');
        if (!modulePath || !label) throw new UsageError('kek add-second needs --module PATH and --token-label LABEL');
        const { pin } = readNamedSecrets(parsed, ['pin']);
        return print(await runtime.send('ADD_SECOND_KEK', { modulePath, label }, { pin: pin! }, flag(parsed, 'source') ?? 'cli'), json);
      }
      case 'recovery-shares': {
        const [what] = parsed.positional;
        if (what === 'create') {
          const [shares, threshold] = [flag(parsed, 'shares'), flag(parsed, 'threshold')];
          if (shares === undefined || threshold === undefined) throw new UsageError('recovery-shares create needs --shares N and --threshold K');
          return await createShares(runtime, { shares, threshold }, flag(parsed, 'source') ?? 'cli', json);
        }
        if (what === 'verify') {
          const { decodeShare, verifyShare } = require('../crypto/recovery-shares') as typeof import('../crypto/recovery-shares');
          const set = await runtime.store.keyMaterial.recoveryShareSet();
          if (!set) throw new KeyCustodyError('RECOVERY_SHARES_MISSING', 'no recovery share set has been made: `keyward recovery-shares create` makes one');
          const share = decodeShare(readFileSync(0, 'utf8'));
          try {
            verifyShare(share, set);
          } finally {
            share.shamir.fill(0);
          }
          const verdict = { valid: true, shareSetId: set.shareSetId, index: share.index, shares: set.shares, threshold: set.threshold };
          process.stdout.write(json ? `${JSON.stringify(verdict)}\n` : `share ${share.index} of ${set.shares} belongs to share set ${set.shareSetId} (${set.threshold} needed to recover)\n`);
          return EXIT.OK;
        }
        throw new UsageError('recovery-shares takes: create or verify');
      }
      case 'start': {
        const code = await lazy.serve()(runtime);
        serving = true; // serve closed the runtime itself, or keeps it until a signal
        return code;
      }
      case 'inspect': {
        const history = Number(flag(parsed, 'history') ?? 10);
        if (!Number.isInteger(history) || history < 0) throw new UsageError('--history takes a number');
        const inspection = await runtime.engine.inspect({ historyLimit: history });
        // The token in use, or the one the HSM step was last asked to use: what keyward can do with it.
        // Before the first BOOT there is no schema, so no token either.
        const configured = await runtime.store.storage.token().catch(() => null);
        const token = configured ? { modulePath: configured.modulePath, label: configured.tokenLabel } : inspection.context.hsm;
        const tokenCapabilities = token ? lazy.capabilities().reportCapabilities(token.modulePath, token.label, true) : null;
        const nodes = await lazy.nodes()(runtime);
        // With a second KEK: each KEK's health as the last probe recorded it, and since when.
        const keks = await runtime.store.secondKek.health().catch(() => []);
        if (json) {
          process.stdout.write(`${JSON.stringify({ ...inspection, tokenCapabilities, nodes, keks })}\n`);
        } else {
          const lines = [
            `state:        ${inspection.state}`,
            `wizard state: ${inspection.wizardState ?? '-'}`,
            `scenario:     ${inspection.scenario ?? '-'}`,
            `accepts:      ${inspection.accepts.join(', ') || '-'}`,
            `revision:     ${inspection.revision ?? '-'}`,
          ];
          if (inspection.context.reason) lines.push(`reason:       ${inspection.context.reason}`);
          if (inspection.context.lastError) lines.push(`last error:   ${inspection.context.lastError.message} (error code ${inspection.context.lastError.code})`);
          if (tokenCapabilities) lines.push(...lazy.capabilities().capabilityLines(tokenCapabilities));
          for (const kek of keks) lines.push(`${`${kek.kek} KEK:`.padEnd(14)}${kek.healthy ? 'healthy' : `UNHEALTHY (${kek.problem ?? 'unknown'})`} since ${kek.since}`);
          lines.push(`nodes:        ${nodes.length === 0 ? '-' : ''}`);
          for (const node of nodes)
            lines.push(
              `  ${node.host} pid ${node.pid} keyward ${node.version}, last heartbeat ${node.lastHeartbeat}: ${node.state === 'unready' ? `not ready: ${node.reasons.join('; ')}` : node.state}`,
            );
          if (inspection.pendingEffect) lines.push(`in flight:    ${inspection.pendingEffect.src} (pid ${inspection.pendingEffect.owner.pid} on ${inspection.pendingEffect.owner.host})`);
          lines.push('history:');
          for (const row of inspection.history) lines.push(`  ${row.revision}\t${row.at}\t${row.source}\t${row.eventType}\t${row.fromState} -> ${row.toState}`);
          process.stdout.write(`${lines.join('\n')}\n`);
        }
        return EXIT.OK;
      }
      case 'send': {
        const [type] = parsed.positional;
        if (!type) throw new UsageError('send needs an EVENT');
        let payload: Record<string, unknown> = {};
        const text = flag(parsed, 'payload');
        if (text !== undefined) {
          try {
            payload = JSON.parse(text) as Record<string, unknown>;
          } catch {
            throw new UsageError('--payload must be a JSON object');
          }
          if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) throw new UsageError('--payload must be a JSON object');
        }
        if (type === 'SUBMIT_RECOVERY_SHARE' && !parsed.flags.has('secret')) return await submitShares(runtime, flag(parsed, 'source') ?? 'cli', json);
        // The shares it makes are printed once, as `recovery-shares create` does.
        if (type === 'CREATE_RECOVERY_SHARES') return await createShares(runtime, payload, flag(parsed, 'source') ?? 'cli', json);
        const secrets = readSecrets(parsed.flags.get('secret') ?? []);
        const code = print(await runtime.send(type, payload, secrets, flag(parsed, 'source') ?? 'cli'), json);
        // Back in operation (after auto-restore, say) with a rotation unfinished: it resumes now.
        const resumed = code === EXIT.OK && !/^ROTATE_/.test(type) ? await runtime.resumeKeyRotation(flag(parsed, 'source') ?? 'cli') : null;
        return resumed ? print(resumed, json) : code;
      }
      case 'graph': {
        const inspection = await runtime.engine.inspect({ historyLimit: 0 });
        const { snapshot } = await runtime.engine.load();
        const { machineGraph, toDot, toMermaid } = lazy.graph();
        const graph = machineGraph([...snapshot._nodes].map((node) => node.id));
        const format = flag(parsed, 'format') ?? 'dot';
        const text = format === 'dot' ? toDot(graph) : format === 'mermaid' ? toMermaid(graph) : format === 'json' ? `${JSON.stringify({ state: inspection.state, ...graph })}\n` : null;
        if (text === null) throw new UsageError('--format is dot, mermaid or json');
        const output = flag(parsed, 'output');
        if (output) writeFileSync(output, text);
        else process.stdout.write(text);
        return EXIT.OK;
      }
      default:
        throw new UsageError(`unknown command ${parsed.command}`);
    }
  } finally {
    // A start that failed before serving must close its database too, or its pool keeps the process alive.
    if (!serving) await runtime.close().catch(() => {});
    if (parsed.command !== 'start') guard.lock?.release();
  }
}

/** CREATE_RECOVERY_SHARES, the shares printed once on stdout (one per line), the set on stderr. */
async function createShares(runtime: KeywardRuntime, payload: Record<string, unknown>, source: string, json: boolean): Promise<number> {
  let made: readonly string[] = [];
  const result = await runtime.send('CREATE_RECOVERY_SHARES', payload, {}, source, (box) => (made = box.revealed('shares') ?? []));
  if (result.outcome !== 'applied' || made.length === 0) return print(result, json);
  const set = await runtime.store.keyMaterial.recoveryShareSet();
  if (json) {
    process.stdout.write(`${JSON.stringify({ ...result, exitCode: EXIT.OK, shareSetId: set?.shareSetId, threshold: set?.threshold, shares: made })}\n`);
  } else {
    process.stderr.write(`keyward: share set ${set?.shareSetId}: any ${set?.threshold} of these ${made.length} shares recover the data. They are shown once: hand each to a different person now.\n`);
    made.forEach((share, i) => process.stdout.write(`share ${i + 1} of ${made.length}: ${share}\n`));
  }
  return EXIT.OK;
}

/**
 * Recovery shares from stdin, one per line, one event each: the shares stay in this process's memory
 * only, so all K go through one command (typed in turn, or piped). Stops at the first refusal.
 */
async function submitShares(runtime: KeywardRuntime, source: string, json: boolean): Promise<number> {
  const lines = readFileSync(0, 'utf8')
    .split(/\r?\n/)
    .filter((line) => line.trim() !== '');
  if (lines.length === 0) throw new UsageError('SUBMIT_RECOVERY_SHARE reads the shares from stdin, one per line: none was given');
  let code: number = EXIT.OK;
  for (const [i, line] of lines.entries()) {
    const result = await runtime.send('SUBMIT_RECOVERY_SHARE', {}, { share: line }, source);
    lines[i] = '';
    code = print(result, json);
    const collected = runtime.custody.recoveryShares.status();
    if (!json && collected && result.wizardState === 'WIZARD_AUTO_RESTORE_PASSWORD') process.stderr.write(`keyward: ${collected.indexes.length} of ${collected.threshold} recovery shares are in\n`);
    if (code !== EXIT.OK || result.wizardState !== 'WIZARD_AUTO_RESTORE_PASSWORD') break;
  }
  return code;
}

/** `--fresh-start` and `--accept-older-store`: the operator's explicit word, applied before BOOT. */
async function storeAcceptance(runtime: KeywardRuntime, options: { freshStart: boolean; acceptOlder: boolean }): Promise<void> {
  const { home, deployment } = runtime.config;
  const lifecycle = runtime.store.lifecycle;
  if (options.freshStart) {
    const stored = (await lifecycle.tablesExist()) ? await lifecycle.load(deployment) : null;
    if (stored) throw new UsageError(`--fresh-start begins an empty store anew, but this one is at lifecycle revision ${stored.revision}; nothing was changed`);
    writeMark(home, deployment, null);
  }
  if (options.acceptOlder) {
    const { from, to } = await acceptStore(home, deployment, lifecycle);
    process.stderr.write(`keyward: --accept-older-store: the high-water mark moved from revision ${from?.revision ?? 'none'} to ${to?.revision ?? 'none'} (this store)\n`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    // One lookup: the error's code gives the exit code; the message is the sentence, the code a detail.
    const known = asKeywardError(error);
    if (!known) {
      process.stderr.write(`keyward: ${safeErrorMessage(error)}\n`);
      process.exitCode = EXIT.ERROR;
      return;
    }
    process.stderr.write(`keyward: ${known.message}\n  (error code ${known.code}, exit ${known.exitCode})\n`);
    if (known instanceof UsageError) process.stderr.write(`\n${USAGE}`);
    process.exitCode = known.exitCode;
  },
);
