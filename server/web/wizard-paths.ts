import type { StorageType } from '../../hsm/storage-type';
import type { HsmType } from '../../machines/events';

/** Trustpoint's wizard URLs (kept as they are), and keyward's set-up code page beside them. */
export const PATHS = {
  unlock: '/setup-wizard/unlock/',
  cryptoStorage: '/setup-wizard/crypto-storage-setup/',
  hsmSetup: '/setup-wizard/hsm-setup/:hsmType/',
  setupMode: '/setup-wizard/setup_mode/',
  restore: '/setup-wizard/restore/',
  selectTls: '/setup-wizard/select_tls_server_credential/',
  generateTls: '/setup-wizard/generate-tls-server-credential/',
  importTls: '/setup-wizard/import-tls-server-credential/',
  tlsApply: '/setup-wizard/tls-server-credential-apply/',
  tlsApplyCancel: '/setup-wizard/tls-server-credential-apply-cancel/',
  backupPassword: '/setup-wizard/backup-password/',
  recoveryShares: '/setup-wizard/recovery-shares/',
  demoData: '/setup-wizard/demo-data/',
  createSuperUser: '/setup-wizard/create-super-user',
  autoRestoreHsmSetup: '/setup-wizard/auto-restore-hsm-setup/:hsmType/',
  autoRestorePassword: '/setup-wizard/auto_restore_password/',
  back: '/setup-wizard/back/',
  summary: '/summary',
  declareTokenLost: '/lifecycle/declare-token-lost',
  login: '/login',
  logout: '/logout',
  status: '/status',
  keys: '/keys',
  devices: '/devices',
  credentials: '/credentials',
  cas: '/cas',
  inspect: '/inspect',
  lifecycle: '/lifecycle',
} as const;

export function hsmTypeOf(storageType: StorageType | null): HsmType | null {
  return storageType === 'softhsm' ? 'softhsm' : storageType === 'physical_hsm' ? 'physical' : null;
}

export function withHsmType(path: string, hsmType: HsmType): string {
  return path.replace(':hsmType', hsmType);
}

/** The page of each wizard state: a GET of any step is sent here. */
export function pathOfWizardState(wizardState: string | null, storageType: StorageType | null): string | null {
  const hsmType = hsmTypeOf(storageType) ?? 'softhsm';
  switch (wizardState) {
    case 'WIZARD_SETUP_CRYPTO_STORAGE':
      return PATHS.cryptoStorage;
    case 'WIZARD_SETUP_HSM':
      return withHsmType(PATHS.hsmSetup, hsmType);
    case 'WIZARD_SETUP_MODE':
      return PATHS.setupMode;
    case 'WIZARD_SELECT_TLS_SERVER_CREDENTIAL':
      return PATHS.selectTls;
    case 'WIZARD_TLS_SERVER_CREDENTIAL_APPLY':
      return PATHS.tlsApply;
    case 'WIZARD_BACKUP_PASSWORD':
      return PATHS.backupPassword;
    case 'WIZARD_RECOVERY_SHARES':
      return PATHS.recoveryShares;
    case 'WIZARD_DEMO_DATA':
      return PATHS.demoData;
    case 'WIZARD_CREATE_SUPER_USER':
      return PATHS.createSuperUser;
    case 'WIZARD_SETUP_HSM_AUTORESTORE':
      return withHsmType(PATHS.autoRestoreHsmSetup, hsmType);
    case 'WIZARD_AUTO_RESTORE_PASSWORD':
      return PATHS.autoRestorePassword;
    case 'WIZARD_COMPLETED':
      return PATHS.status;
    default:
      return null;
  }
}
