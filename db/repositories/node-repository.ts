import type { Knex } from 'knex';

/** One node's row (migration 011): its identity and its own view, as of its last heartbeat. */
export interface NodeRecord {
  nodeId: string;
  deployment: string;
  host: string;
  pid: number;
  version: string;
  heartbeatSeconds: number;
  startedAt: string;
  lastHeartbeat: string;
  ready: boolean;
  reasons: string[];
  databaseReachable: boolean;
  tokenReachable: boolean | null;
  dekLoaded: boolean | null;
  tlsCurrent: boolean | null;
}

interface NodeRow {
  node_id: string;
  deployment: string;
  host: string;
  pid: number;
  version: string;
  heartbeat_seconds: number;
  started_at: string;
  last_heartbeat: string;
  ready: boolean | number;
  reasons: string;
  database_reachable: boolean | number;
  token_reachable: boolean | number | null;
  dek_loaded: boolean | number | null;
  tls_current: boolean | number | null;
}

/** SQLite returns booleans as 0 and 1. */
const flag = (value: boolean | number | null): boolean | null => (value === null ? null : Boolean(value));

function recordOf(row: NodeRow): NodeRecord {
  let reasons: string[] = [];
  try {
    const parsed: unknown = JSON.parse(row.reasons);
    if (Array.isArray(parsed)) reasons = parsed.map(String);
  } catch {
    reasons = [row.reasons];
  }
  return {
    nodeId: row.node_id,
    deployment: row.deployment,
    host: row.host,
    pid: Number(row.pid),
    version: row.version,
    heartbeatSeconds: Number(row.heartbeat_seconds),
    startedAt: row.started_at,
    lastHeartbeat: row.last_heartbeat,
    ready: Boolean(row.ready),
    reasons,
    databaseReachable: Boolean(row.database_reachable),
    tokenReachable: flag(row.token_reachable),
    dekLoaded: flag(row.dek_loaded),
    tlsCurrent: flag(row.tls_current),
  };
}

/** The nodes table: every running keyward process of a deployment, each writing only its own row. */
export class NodeRepository {
  constructor(
    private readonly db: Knex,
    private readonly reader: Knex = db,
  ) {}

  /** False before migration 011 (a database not yet booted by this keyward). */
  async tableExists(): Promise<boolean> {
    return this.reader.schema.hasTable('nodes');
  }

  async beat(record: NodeRecord): Promise<void> {
    await this.db('nodes')
      .insert({
        node_id: record.nodeId,
        deployment: record.deployment,
        host: record.host,
        pid: record.pid,
        version: record.version,
        heartbeat_seconds: record.heartbeatSeconds,
        started_at: record.startedAt,
        last_heartbeat: record.lastHeartbeat,
        ready: record.ready,
        reasons: JSON.stringify(record.reasons),
        database_reachable: record.databaseReachable,
        token_reachable: record.tokenReachable,
        dek_loaded: record.dekLoaded,
        tls_current: record.tlsCurrent,
      })
      .onConflict('node_id')
      .merge();
  }

  /** The deployment's nodes, oldest start first. */
  async list(deployment: string): Promise<NodeRecord[]> {
    const rows = await this.reader<NodeRow>('nodes')
      .where({ deployment })
      .orderBy([{ column: 'started_at' }, { column: 'node_id' }]);
    return rows.map(recordOf);
  }

  /** A graceful shutdown: the node leaves the table rather than being shown as gone. */
  async remove(nodeId: string): Promise<void> {
    await this.db('nodes').where({ node_id: nodeId }).delete();
  }

  /** Rows of nodes that stopped beating before `before` (ISO-8601): killed long ago, they only clutter the list. */
  async pruneSilentSince(deployment: string, before: string): Promise<number> {
    return this.db('nodes').where({ deployment }).andWhere('last_heartbeat', '<', before).delete();
  }
}
