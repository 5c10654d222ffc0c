import { SOFTHSM_MODULE } from '../../support/softhsm';
import { fieldError, WebClient, WebResponse } from './web-client';

export interface WizardSecrets {
  pin: string;
  soPin: string;
  backupPassword: string;
  adminPassword: string;
}

function expectRedirect(response: WebResponse, step: string): string {
  if (response.status !== 303 || !response.location) {
    const error = /id="[A-Za-z]+-error"[^>]*>([^<]*)</.exec(response.body)?.[1] ?? /id="error-message">([^<]*)/.exec(response.body)?.[1] ?? '';
    throw new Error(`${step}: expected a 303 redirect, got HTTP ${response.status} ${error}`);
  }
  return new URL(response.location).pathname;
}

/** Presents the set-up code; returns where the server sends the session next. */
export async function unlock(client: WebClient, code: string): Promise<string> {
  const response = await client.postForm('/setup-wizard/unlock/', '/setup-wizard/unlock/', { code });
  if (response.status !== 303) throw new Error(`unlock: HTTP ${response.status} ${fieldError(response.body, 'code') ?? ''}`);
  return new URL(response.location!).pathname;
}

/** One wizard step: the form page for its CSRF token, the POST, the redirect it answers with. */
export async function step(client: WebClient, page: string, fields: Record<string, string>, action = page): Promise<string> {
  return expectRedirect(await client.postForm(page, action, fields), `${action}`);
}

export interface HsmFormOptions {
  modulePath?: string;
  label?: string;
  /** `null` leaves the field out of the POST, as a form sent without it. */
  slot?: string | null;
}

/**
 * The HSM set-up form of the wizard and of the auto-restore, each PIN typed twice as the page asks.
 * Without `soPin` it is the physical-HSM form, which has no SO PIN fields.
 */
export function softHsmForm(pin: string, soPin?: string, options: HsmFormOptions = {}): Record<string, string> {
  const { modulePath = SOFTHSM_MODULE, label = 'Trustpoint-SoftHSM', slot = '' } = options;
  return {
    modulePath,
    label,
    ...(slot === null ? {} : { slot }),
    pin,
    pinConfirm: pin,
    ...(soPin === undefined ? {} : { soPin, soPinConfirm: soPin }),
  };
}

/** The whole wizard over HTTP (no browser), for the tests about what surrounds it; a physical HSM's token exists already. */
export async function walkWizard(client: WebClient, storage: 'software' | 'softhsm' | 'physical_hsm', secrets: WizardSecrets, username = 'admin'): Promise<void> {
  let at = await step(client, '/setup-wizard/crypto-storage-setup/', { storageType: storage });
  if (storage !== 'software') at = await step(client, at, softHsmForm(secrets.pin, storage === 'softhsm' ? secrets.soPin : undefined));
  await step(client, at, { mode: 'fresh' });
  at = await step(client, '/setup-wizard/generate-tls-server-credential/', { subjectAltNames: 'localhost\n127.0.0.1' });
  at = await step(client, at, {});
  if (storage !== 'software') at = await step(client, at, { password: secrets.backupPassword, passwordConfirm: secrets.backupPassword });
  // The optional recovery-shares step (HSM storage only): skipped.
  if (storage !== 'software') at = await step(client, at, { choice: 'skip' });
  at = await step(client, at, { choice: 'skip' });
  at = await step(client, at, { username, password: secrets.adminPassword, passwordConfirm: secrets.adminPassword });
  if (at !== '/summary') throw new Error(`after the wizard: at ${at}, not /summary`);
}

export async function logIn(client: WebClient, username: string, password: string): Promise<void> {
  const at = await step(client, '/login', { username, password });
  if (at !== '/status') throw new Error(`after the login: at ${at}`);
}
