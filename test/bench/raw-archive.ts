import { execFileSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import * as argon2 from 'argon2';
import * as pkcs11js from 'pkcs11js';
import sqlite3 from 'sqlite3';
import { DEFAULT_KDF } from '../../crypto/backup-copy';
import { Pkcs11Module } from '../../hsm/pkcs11-module';
import { ALL_SECRET_COLUMNS_PER_DOCS } from '../support/field-format';

/**
 * The raw baselines of `npm run bench -- restore`: the same job as keyward's backup and restore done
 * with the plain tools, no keyward code on the path (keyward's KDF parameters and PKCS#11 loader
 * aside). Backup: Argon2id of the passphrase, SQLite's online backup API (node sqlite3's
 * Database#backup, the mechanism of the sqlite3 CLI's .backup), PRAGMA integrity_check of the copy,
 * SHA-256 and AES-256-GCM of the copy streamed to one file, fsync. Restore: the reverse, the hash
 * checked, the database file written and fsynced (as keyward, no integrity_check of a file whose
 * bytes the hash proves to be the checked copy).
 */
const SOFTHSM = '/usr/lib/softhsm/libsofthsm2.so';
const HEADER = 16 + 12; // salt | nonce; then ciphertext | tag(16) | SHA-256 of the plaintext (32, encrypted with it)

export async function passphraseKey(passphrase: string, salt: Buffer): Promise<Buffer> {
  return argon2.hash(passphrase, {
    type: argon2.argon2id,
    version: 0x13,
    memoryCost: DEFAULT_KDF.memoryKiB,
    timeCost: DEFAULT_KDF.iterations,
    parallelism: DEFAULT_KDF.parallelism,
    salt,
    hashLength: 32,
    raw: true,
  });
}

export async function rawBackup(databaseFile: string, output: string, passphrase: string): Promise<void> {
  const salt = randomBytes(16);
  const nonce = randomBytes(12);
  const key = await passphraseKey(passphrase, salt);
  const copy = `${output}.sqlite`;
  await onlineBackup(databaseFile, copy);
  try {
    await integrityCheck(copy);
    const hash = createHash('sha256');
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    const out = createWriteStream(output, { mode: 0o600 });
    out.write(Buffer.concat([salt, nonce]));
    await pipeline(
      createReadStream(copy),
      new Transform({
        transform(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          done(null, cipher.update(chunk));
        },
        flush(done) {
          const trailer = cipher.update(hash.digest());
          cipher.final();
          done(null, Buffer.concat([trailer, cipher.getAuthTag()]));
        },
      }),
      out,
    );
    await fsync(output);
  } finally {
    await unlink(copy).catch(() => undefined);
  }
}

export async function rawRestore(archive: string, databaseFile: string, passphrase: string): Promise<void> {
  const data = await readFile(archive);
  const key = await passphraseKey(passphrase, data.subarray(0, 16));
  const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(16, HEADER));
  decipher.setAuthTag(data.subarray(data.length - 16));
  const plain = Buffer.concat([decipher.update(data.subarray(HEADER, data.length - 16)), decipher.final()]);
  const database = plain.subarray(0, plain.length - 32);
  if (
    !createHash('sha256')
      .update(database)
      .digest()
      .equals(plain.subarray(plain.length - 32))
  )
    throw new Error('raw restore: the SHA-256 does not match');
  writeFileSync(databaseFile, database, { mode: 0o600, flag: 'wx' });
  await fsync(databaseFile);
}

/** A DEK sealed under a backup password, as keyward's backup copy seals one (Argon2id, AES-256-GCM). */
export async function sealDek(dek: Buffer, password: string): Promise<Buffer> {
  const salt = randomBytes(16);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', await passphraseKey(password, salt), nonce);
  return Buffer.concat([salt, nonce, cipher.update(dek), cipher.final(), cipher.getAuthTag()]);
}

/**
 * Auto-restore done raw: the DEK opened with the backup password, a fresh SoftHSM token set up with
 * pkcs11-tool (as keyward's script does: init-token, init-pin; PINs through the environment), a KEK
 * generated in it with keyward's template, the DEK wrapped under it (C_WrapKey), and every secret
 * value of the restored database opened with the DEK (as keyward's auto-restore checks them all, the
 * drill's canary among them). Returns how many values opened.
 */
export async function rawRecover(scratch: string, sealed: Buffer, password: string, databaseFile: string): Promise<number> {
  const decipher = createDecipheriv('aes-256-gcm', await passphraseKey(password, sealed.subarray(0, 16)), sealed.subarray(16, 28));
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  const dek = Buffer.concat([decipher.update(sealed.subarray(28, sealed.length - 16)), decipher.final()]);

  const home = mkdtempSync(join(scratch, 'raw-token-'));
  mkdirSync(join(home, 'tokens'), { mode: 0o700 });
  const conf = join(home, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${join(home, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  const pin = randomBytes(16).toString('hex');
  const env = { ...process.env, SOFTHSM2_CONF: conf, KW_RAW_SO: randomBytes(16).toString('hex'), KW_RAW_PIN: pin };
  const previousConf = process.env.SOFTHSM2_CONF;
  try {
    execFileSync('pkcs11-tool', ['--module', SOFTHSM, '--slot-index', '0', '--init-token', '--label', 'Raw', '--so-pin', 'env:KW_RAW_SO'], { env, stdio: 'ignore' });
    execFileSync('pkcs11-tool', ['--module', SOFTHSM, '--token-label', 'Raw', '--login', '--login-type', 'so', '--so-pin', 'env:KW_RAW_SO', '--init-pin', '--pin', 'env:KW_RAW_PIN'], {
      env,
      stdio: 'ignore',
    });
    process.env.SOFTHSM2_CONF = conf;
    const module = Pkcs11Module.open(SOFTHSM);
    module.refresh();
    const api = module.api;
    const slot = api.C_GetSlotList(true).find((s) => api.C_GetTokenInfo(s).label.trim() === 'Raw')!;
    const session = api.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      api.C_Login(session, pkcs11js.CKU_USER, pin);
      const kek = api.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
        { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
        { type: pkcs11js.CKA_LABEL, value: 'raw-kek' },
        { type: pkcs11js.CKA_ID, value: randomBytes(16) },
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        { type: pkcs11js.CKA_MODIFIABLE, value: false },
        { type: pkcs11js.CKA_WRAP, value: true },
        { type: pkcs11js.CKA_UNWRAP, value: true },
        { type: pkcs11js.CKA_ENCRYPT, value: false },
        { type: pkcs11js.CKA_DECRYPT, value: false },
        { type: pkcs11js.CKA_SIGN, value: false },
        { type: pkcs11js.CKA_VERIFY, value: false },
      ]);
      const carrier = api.C_CreateObject(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
        { type: pkcs11js.CKA_TOKEN, value: false },
        { type: pkcs11js.CKA_SENSITIVE, value: false },
        { type: pkcs11js.CKA_EXTRACTABLE, value: true },
        { type: pkcs11js.CKA_VALUE, value: dek },
      ]);
      api.C_WrapKey(session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP }, kek, carrier, Buffer.alloc(56));
      api.C_DestroyObject(session, carrier);
    } finally {
      api.C_CloseSession(session);
    }
    return await openEveryValue(databaseFile, dek);
  } finally {
    if (previousConf === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = previousConf;
    dek.fill(0);
    rmSync(home, { recursive: true, force: true });
  }
}

/**
 * Every sealed value of the database opened with the DEK (AES-256-GCM, associated data
 * version||keyId||"table.column"), read 500 rows at a time in id order through node sqlite3: the
 * number that opened. A value that does not open (a plaintext web key) is counted out, as keyward does.
 */
async function openEveryValue(databaseFile: string, dek: Buffer): Promise<number> {
  const db = await new Promise<sqlite3.Database>((resolve, reject) => {
    const opened = new sqlite3.Database(databaseFile, sqlite3.OPEN_READONLY, (error) => (error ? reject(error) : resolve(opened)));
  });
  const all = (sql: string, params: unknown[]) =>
    new Promise<Array<Record<string, unknown>>>((resolve, reject) => db.all(sql, params, (error, rows: Array<Record<string, unknown>>) => (error ? reject(error) : resolve(rows))));
  let opened = 0;
  try {
    for (const [table, columns] of Object.entries(ALL_SECRET_COLUMNS_PER_DOCS)) {
      for (let after = 0; ;) {
        const rows = await all(`SELECT id, ${columns.join(', ')} FROM ${table} WHERE id > ? ORDER BY id LIMIT 500`, [after]);
        for (const row of rows) {
          for (const column of columns) {
            const value = row[column];
            if (!Buffer.isBuffer(value) || value.length < 37) continue;
            try {
              const decipher = createDecipheriv('aes-256-gcm', dek, value.subarray(9, 21));
              decipher.setAAD(Buffer.concat([value.subarray(0, 9), Buffer.from(`${table}.${column}`, 'utf8')]));
              decipher.setAuthTag(value.subarray(value.length - 16));
              decipher.update(value.subarray(21, value.length - 16));
              decipher.final();
              opened += 1;
            } catch {
              // Not sealed under this DEK: counted out.
            }
          }
        }
        if (rows.length < 500) break;
        after = Number(rows[rows.length - 1]!.id);
      }
    }
  } finally {
    await new Promise<void>((resolve) => db.close(() => resolve()));
  }
  return opened;
}

interface SqliteBackup {
  step(pages: number, callback: (error: Error | null) => void): void;
  finish(callback?: (error: Error | null) => void): void;
  completed: boolean;
}

function onlineBackup(source: string, dest: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(source, sqlite3.OPEN_READONLY, (openError) => {
      if (openError) return reject(openError);
      const backup = (db as unknown as { backup(file: string, callback: (error: Error | null) => void): SqliteBackup }).backup(dest, (initError) => {
        if (initError) return db.close(() => reject(initError));
        backup.step(-1, (stepError) => {
          backup.finish(() => db.close(() => (stepError || !backup.completed ? reject(stepError ?? new Error('online backup incomplete')) : resolve())));
        });
      });
    });
  });
}

function integrityCheck(file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(file, sqlite3.OPEN_READONLY, (openError) => {
      if (openError) return reject(openError);
      db.all('PRAGMA integrity_check', (error, rows: Array<{ integrity_check: string }>) => {
        db.close(() => (error ? reject(error) : rows.length === 1 && rows[0]!.integrity_check === 'ok' ? resolve() : reject(new Error(`${file} fails PRAGMA integrity_check`))));
      });
    });
  });
}

async function fsync(file: string): Promise<void> {
  const handle = await open(file, 'r+');
  await handle.sync().finally(() => handle.close());
}
