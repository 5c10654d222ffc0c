/** TLS server credential effects: what the lifecycle machine's TLS actors call. */
export { TlsFilesError, TlsInputError } from './errors';
export type { TlsMaterial } from './tls-material';
export { MAX_SUBJECT_ALT_NAMES, parseSubjectAltNames } from './subject-alt-names';
export { certificateFingerprint } from './certificate';
export { DEFAULT_VALIDITY_DAYS, MAX_VALIDITY_DAYS, generateTlsCredential } from './generate';
export type { GenerateTlsOptions } from './generate';
export { WRONG_PKCS12_PASSWORD, importPkcs12 } from './pkcs12';
export { importPemFiles } from './pem-import';
export type { PemFiles } from './pem-import';
export { MAX_INPUT_BYTES } from './input-file';
export { observeOpensslSpawns } from './openssl';
export type { OpensslSpawn, OpensslSpawnObserver } from './openssl';
export { CERTIFICATE_FILE, CHAIN_FILE, CURRENT_LINK, FULLCHAIN_FILE, KEY_FILE, readTlsFiles, writeTlsFiles } from './tls-files';
export type { TlsFilePaths } from './tls-files';
