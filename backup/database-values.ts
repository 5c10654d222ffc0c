import { decodeBase64Strict } from '../crypto/base64';
import type { DatabaseEngine, JsonValue } from './archive-manifest';
import type { ColumnInfo, LogicalType } from './database-schema';

/**
 * One value per logical type, the same from either engine (docs/backup-format.md §8): integers as
 * JSON numbers (decimal strings beyond 2^53), booleans as true/false (SQLite's 0/1 too), binary as
 * canonical base64, timestamps as ISO-8601 UTC, JSON as its text, decimals as strings.
 */
export function encodeValue(column: ColumnInfo, value: unknown): JsonValue | undefined {
  if (value === null || value === undefined) return null;
  switch (column.type) {
    case 'integer':
      if (typeof value === 'number' && Number.isInteger(value)) return value;
      if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
      if (typeof value === 'string' && /^-?\d+$/.test(value)) return Number.isSafeInteger(Number(value)) ? Number(value) : value;
      return undefined;
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (value === 0 || value === 1) return value === 1;
      return undefined;
    case 'binary':
      return Buffer.isBuffer(value) ? value.toString('base64') : undefined;
    case 'text':
      return typeof value === 'string' ? value : undefined;
    case 'timestamp': {
      const time = value instanceof Date ? value : typeof value === 'number' || typeof value === 'string' ? new Date(value) : null;
      if (time && !Number.isNaN(time.getTime())) return time.toISOString();
      // SQLite stores whatever it was given; text that is not a time is carried verbatim.
      return typeof value === 'string' ? value : undefined;
    }
    case 'json':
      return typeof value === 'string' ? value : JSON.stringify(value);
    case 'float':
      return typeof value === 'number' ? (Number.isFinite(value) ? value : String(value)) : undefined;
    case 'decimal':
      return typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
  }
}

/** The value to bind on insert, or undefined when the exported value does not fit the type. */
export function decodeValue(type: LogicalType, value: unknown, engine: DatabaseEngine): unknown {
  if (value === null) return null;
  switch (type) {
    case 'integer':
      if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
      return typeof value === 'string' && /^-?\d+$/.test(value) ? value : undefined;
    case 'boolean':
      return typeof value === 'boolean' ? value : undefined;
    case 'binary':
      return typeof value === 'string' ? (decodeBase64Strict(value) ?? undefined) : undefined;
    case 'text':
    case 'json':
      return typeof value === 'string' ? value : undefined;
    case 'timestamp': {
      if (typeof value !== 'string') return undefined;
      const time = Date.parse(value);
      if (Number.isNaN(time)) return value;
      // What node-sqlite3 stores for a Date (milliseconds); PostgreSQL parses the ISO text. No Date
      // object is bound: one from another realm (a test VM) would reach SQLite as "[object Object]".
      return engine === 'sqlite' ? time : new Date(time).toISOString();
    }
    case 'float':
      if (typeof value === 'number') return value;
      return value === 'NaN' || value === 'Infinity' || value === '-Infinity' ? Number(value) : undefined;
    case 'decimal':
      return typeof value === 'string' && /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(value) ? value : undefined;
  }
}
