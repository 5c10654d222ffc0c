/** Argon2id parameters and their bounds: plain values, so that configuration loads no Argon2. */
export interface KdfParams {
  /** KiB of memory. */
  memoryKiB: number;
  iterations: number;
  parallelism: number;
}

/** keyward's floor (64 MiB, t = 3); copies below it are neither written nor read. */
export const MINIMUM_KDF: KdfParams = { memoryKiB: 65536, iterations: 3, parallelism: 1 };
export const DEFAULT_KDF: KdfParams = MINIMUM_KDF;

/**
 * What a reader derives with at most, unless its configuration raises it: four times keyward's own
 * defaults. The parameters come from stored data (an archive, the key_material row), so without a
 * ceiling a 200-byte file could ask Argon2id for gigabytes and minutes before anything is checked.
 */
export const DEFAULT_KDF_CEILING: KdfParams = { memoryKiB: 4 * DEFAULT_KDF.memoryKiB, iterations: 4 * DEFAULT_KDF.iterations, parallelism: 4 };

/** The highest ceiling a configuration may set: what the formats can express and a host can bear. */
export const MAX_KDF_CEILING: KdfParams = { memoryKiB: 4 * 1024 * 1024, iterations: 64, parallelism: 64 };

export function exceedsKdfCeiling(params: KdfParams, ceiling: KdfParams): boolean {
  return params.memoryKiB > ceiling.memoryKiB || params.iterations > ceiling.iterations || params.parallelism > ceiling.parallelism;
}

/** The message of a refusal; names the variables that raise the ceiling, never any secret. */
export function kdfCeilingMessage(params: KdfParams, ceiling: KdfParams): string {
  return (
    `Argon2id parameters m=${params.memoryKiB} KiB, t=${params.iterations}, p=${params.parallelism} exceed this keyward's ceiling ` +
    `(m ≤ ${ceiling.memoryKiB} KiB, t ≤ ${ceiling.iterations}, p ≤ ${ceiling.parallelism}); nothing was derived. If the data is trusted, ` +
    'raise KEYWARD_KDF_MAX_MEMORY_KIB, KEYWARD_KDF_MAX_ITERATIONS or KEYWARD_KDF_MAX_PARALLELISM on this host'
  );
}
