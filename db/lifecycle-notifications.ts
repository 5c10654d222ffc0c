import type { DatabaseConfig } from './database';

/** The PostgreSQL channel every lifecycle commit notifies (payload "deployment:revision"), in its transaction. */
export const LIFECYCLE_CHANNEL = 'keyward_lifecycle';

export interface LifecycleListener {
  close(): Promise<void>;
}

export interface ListenOptions {
  /** A connection failed or dropped (it is opened again after `retryMs`). */
  onError?: (error: Error) => void;
  retryMs?: number;
}

interface PgClient {
  on(event: 'notification', listener: (message: { channel: string; payload?: string }) => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
  on(event: 'end', listener: () => void): void;
  connect(): Promise<void>;
  query(sql: string): Promise<unknown>;
  end(): Promise<void>;
}

/**
 * LISTENs on a connection of its own (a pooled one would be handed to other queries, and a
 * transaction-mode pooler forgets LISTEN): `onChange` runs for every commit of `deployment` by any
 * process, and once after each (re)connection, since commits made while it was away were not
 * heard. Null for SQLite, which has no notifications: polling alone carries changes there.
 */
export function listenForLifecycleChanges(config: DatabaseConfig, deployment: string, onChange: () => void, options: ListenOptions = {}): LifecycleListener | null {
  if (config.client !== 'pg') return null;
  let current: PgClient | null = null;
  let closed = false;
  let retry: NodeJS.Timeout | null = null;

  const scheduleReconnect = () => {
    if (closed || retry) return;
    retry = setTimeout(() => {
      retry = null;
      void connect();
    }, options.retryMs ?? 1000);
    retry.unref();
  };
  const drop = (client: PgClient, error?: Error) => {
    if (current !== client && current !== null) return;
    current = null;
    if (error && !closed) options.onError?.(error);
    client.end().catch(() => undefined);
    scheduleReconnect();
  };
  const connect = async () => {
    if (closed) return;
    // pg itself, not knex's pool: loaded by a server on PostgreSQL only.
    const { Client } = require('pg') as { Client: new (options: { connectionString: string }) => PgClient };
    const client = new Client({ connectionString: config.connectionString });
    client.on('notification', (message) => {
      if (message.channel === LIFECYCLE_CHANNEL && (message.payload ?? '').startsWith(`${deployment}:`)) onChange();
    });
    client.on('error', (error) => drop(client, error));
    client.on('end', () => drop(client));
    try {
      await client.connect();
      await client.query(`LISTEN ${LIFECYCLE_CHANNEL}`);
    } catch (error) {
      drop(client, error as Error);
      return;
    }
    if (closed) {
      await client.end().catch(() => undefined);
      return;
    }
    current = client;
    onChange();
  };
  void connect();

  return {
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      const client = current;
      current = null;
      await client?.end().catch(() => undefined);
    },
  };
}
