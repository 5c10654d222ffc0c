import type { Knex } from 'knex';

export type BackupRunKind = 'backup' | 'drill';
export type BackupRunTrigger = 'schedule' | 'web';
export type BackupRunStatus = 'running' | 'ok' | 'failed';

/** Which process runs a run (one server per home). */
export interface RunNode {
  host: string;
  pid: number;
  home: string;
}

export interface BackupRun {
  id: number;
  kind: BackupRunKind;
  trigger: BackupRunTrigger;
  slot: string | null;
  status: BackupRunStatus;
  startedAt: string;
  finishedAt: string | null;
  node: RunNode;
  archive: string | null;
  size: number | null;
  rtoSeconds: number | null;
  message: string | null;
}

interface Row {
  id: number;
  kind: BackupRunKind;
  triggered_by: BackupRunTrigger;
  slot: string | null;
  status: BackupRunStatus;
  started_at: string;
  finished_at: string | null;
  node_host: string;
  node_pid: number;
  node_home: string;
  archive: string | null;
  size: number | string | null;
  rto_seconds: number | string | null;
  message: string | null;
}

const number = (value: number | string | null): number | null => (value === null ? null : Number(value));

function runOf(row: Row): BackupRun {
  return {
    id: Number(row.id),
    kind: row.kind,
    trigger: row.triggered_by,
    slot: row.slot,
    status: row.status,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    node: { host: row.node_host, pid: Number(row.node_pid), home: row.node_home },
    archive: row.archive,
    size: number(row.size),
    rtoSeconds: number(row.rto_seconds),
    message: row.message,
  };
}

/** The history of backups and drills (migration 014), shared by every process on the database. */
export class BackupRunRepository {
  constructor(
    private readonly db: Knex,
    private readonly deployment: string,
  ) {}

  /** False on a database not yet migrated to 014 (before the first BOOT of this keyward). */
  async tableExists(): Promise<boolean> {
    return this.db.schema.hasTable('backup_runs');
  }

  /**
   * Claims a scheduled slot: one INSERT that the unique (deployment, kind, slot) lets exactly one
   * process win, on SQLite and PostgreSQL alike. The run's id when this process won, else null.
   */
  async claim(kind: BackupRunKind, slot: string, node: RunNode, startedAt: string): Promise<number | null> {
    await this.db.raw(
      `INSERT INTO backup_runs (deployment, kind, triggered_by, slot, status, started_at, node_host, node_pid, node_home)
       VALUES (?, ?, 'schedule', ?, 'running', ?, ?, ?, ?) ON CONFLICT (deployment, kind, slot) DO NOTHING`,
      [this.deployment, kind, slot, startedAt, node.host, node.pid, node.home],
    );
    const row = (await this.db('backup_runs').where({ deployment: this.deployment, kind, slot }).first()) as Row | undefined;
    const ours = row && row.node_host === node.host && Number(row.node_pid) === node.pid && row.node_home === node.home && row.started_at === startedAt;
    return ours ? Number(row.id) : null;
  }

  /** The latest scheduled time any process of the deployment claimed (whatever its outcome), or null. */
  async lastScheduledSlot(kind: BackupRunKind): Promise<string | null> {
    const row = (await this.db('backup_runs').where({ deployment: this.deployment, kind, triggered_by: 'schedule' }).max('slot as slot').first()) as { slot: string | null } | undefined;
    return row?.slot ?? null;
  }

  /** A run asked for by hand (the web page): nothing to claim. */
  async begin(kind: BackupRunKind, trigger: BackupRunTrigger, node: RunNode, startedAt: string): Promise<number> {
    const rows: Array<number | { id: number }> = await this.db('backup_runs')
      .insert({ deployment: this.deployment, kind, triggered_by: trigger, slot: null, status: 'running', started_at: startedAt, node_host: node.host, node_pid: node.pid, node_home: node.home })
      .returning('id');
    const inserted = rows[0]!;
    return Number(typeof inserted === 'object' ? inserted.id : inserted);
  }

  async finish(
    id: number,
    outcome: { status: 'ok' | 'failed'; finishedAt: string; archive?: string | null; size?: number | null; rtoSeconds?: number | null; message?: string | null },
  ): Promise<void> {
    await this.db('backup_runs')
      .where({ id })
      .update({
        status: outcome.status,
        finished_at: outcome.finishedAt,
        archive: outcome.archive ?? null,
        size: outcome.size ?? null,
        rto_seconds: outcome.rtoSeconds ?? null,
        message: outcome.message ?? null,
      });
  }

  /**
   * Runs this home's earlier process left running (it stopped or crashed meanwhile): failed, and said
   * so. Earlier means started before this process did: a restarted container's process often has
   * the same pid as the one before it.
   */
  async markInterrupted(node: RunNode, processStartedAt: string, finishedAt: string): Promise<number> {
    return Number(
      await this.db('backup_runs')
        .where({ deployment: this.deployment, status: 'running', node_host: node.host, node_home: node.home })
        .andWhere('started_at', '<', processStartedAt)
        .update({ status: 'failed', finished_at: finishedAt, message: 'interrupted: the keyward process that ran it stopped before it finished' }),
    );
  }

  /** The newest runs first. */
  async recent(limit: number, kind?: BackupRunKind): Promise<BackupRun[]> {
    const query = this.db('backup_runs').where({ deployment: this.deployment });
    if (kind) query.andWhere({ kind });
    return (
      (await query
        .orderBy([
          { column: 'started_at', order: 'desc' },
          { column: 'id', order: 'desc' },
        ])
        .limit(limit)) as Row[]
    ).map(runOf);
  }

  /** The newest finished run of a kind, and the newest successful one. */
  async latest(kind: BackupRunKind): Promise<{ finished: BackupRun | null; succeeded: BackupRun | null; running: BackupRun | null }> {
    const base = () => this.db('backup_runs').where({ deployment: this.deployment, kind });
    const newest = async (query: Knex.QueryBuilder) =>
      (await query
        .orderBy([
          { column: 'started_at', order: 'desc' },
          { column: 'id', order: 'desc' },
        ])
        .first()) as Row | undefined;
    const [finished, succeeded, running] = await Promise.all([newest(base().whereNot({ status: 'running' })), newest(base().where({ status: 'ok' })), newest(base().where({ status: 'running' }))]);
    return { finished: finished ? runOf(finished) : null, succeeded: succeeded ? runOf(succeeded) : null, running: running ? runOf(running) : null };
  }
}
