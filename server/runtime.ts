import { Store } from '../db/store';
import { DekKeyring } from '../hsm/dek-keyring';
import { KeyCustody } from '../effects/key-custody';
import { LifecycleEffects } from '../effects/lifecycle-effects';
import { probeStartup } from '../effects/startup-probe';
import { EventPayloadError, parseExternalEvent, requiredSecrets } from '../machines/events';
import type { KeywardConfig } from './config';
import { LifecycleEngine, SendResult } from './lifecycle-engine';
import { SecretBox } from './secret-box';

export interface RuntimeOptions {
  onCheckpoint?: (name: string) => Promise<void>;
  busyWaitMs?: number;
}

/**
 * The composition root of one keyward process: configuration, database, DEK keyring, key custody,
 * effects and the lifecycle engine. The CLI and the web server each open one.
 */
export class KeywardRuntime {
  readonly store: Store;
  readonly keyring = new DekKeyring();
  readonly custody: KeyCustody;
  readonly engine: LifecycleEngine;

  constructor(
    readonly config: KeywardConfig,
    options: RuntimeOptions = {},
  ) {
    // SoftHSM2 reads its configuration at C_Initialize; point it at ours before any module loads.
    process.env.SOFTHSM2_CONF = config.softhsmConf;
    this.store = Store.open(config.database, this.keyring);
    this.custody = new KeyCustody(this.store, this.keyring, { secretsDir: config.secretsDir, kekLabel: config.kekLabel, kdf: config.kdf });
    const effects = new LifecycleEffects(this.custody, config);
    this.engine = new LifecycleEngine({
      repository: this.store.lifecycle,
      effects,
      deployment: config.deployment,
      onCheckpoint: options.onCheckpoint,
      busyWaitMs: options.busyWaitMs,
    });
  }

  /** Probes the real situation and sends BOOT, from whatever state was persisted. */
  async boot(source = 'startup'): Promise<SendResult> {
    const { snapshot } = await this.engine.load();
    const startup = await probeStartup(this.custody, this.config.appVersion, snapshot.context.wizardCompleted);
    return this.engine.send({ type: 'BOOT', at: new Date().toISOString(), startup }, { source, secrets: new SecretBox() });
  }

  /**
   * An event from outside (CLI, web, script): checked, secrets checked beside it, then applied.
   * A bad payload or a missing secret is refused before anything is touched.
   */
  async send(type: string, payload: Record<string, unknown>, secrets: Record<string, string>, source: string): Promise<SendResult> {
    const box = new SecretBox(secrets);
    try {
      const event = parseExternalEvent(type, payload, new Date().toISOString());
      const missing = requiredSecrets(event).filter((name) => !box.has(name) || secrets[name] === '');
      if (missing.length > 0) throw new EventPayloadError(missing[0]!, `${type} needs the secret(s) ${missing.join(', ')} (on stdin or in a file, never as an argument)`);
      const unknown = box.names().filter((name) => !requiredSecrets(event).includes(name));
      if (unknown.length > 0) throw new EventPayloadError(unknown[0]!, `${type} takes no secret named ${unknown.join(', ')}`);
      return await this.engine.send(event, { source, secrets: box });
    } catch (error) {
      if (error instanceof EventPayloadError) {
        const { state, wizardState, revision } = await this.engine.inspect({ historyLimit: 0 }).catch(() => ({ state: 'unknown', wizardState: null, revision: null }));
        return { outcome: 'refused', state, wizardState, revision, message: error.message, error: { code: 'INVALID_EVENT', message: error.message } };
      }
      throw error;
    } finally {
      box.clear();
    }
  }

  async close(): Promise<void> {
    this.keyring.clear();
    await this.store.close();
  }
}
