/** Where keys live (Trustpoint's KeyStorageConfig.StorageType). */
export const STORAGE_TYPES = ['software', 'softhsm', 'physical_hsm'] as const;
export type StorageType = (typeof STORAGE_TYPES)[number];

export function isStorageType(value: unknown): value is StorageType {
  return typeof value === 'string' && (STORAGE_TYPES as readonly string[]).includes(value);
}

/** HSM storage encrypts secret columns under the DEK; software storage keeps them in plaintext. */
export function isHsmStorage(type: StorageType | null): type is 'softhsm' | 'physical_hsm' {
  return type === 'softhsm' || type === 'physical_hsm';
}
