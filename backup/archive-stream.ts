import { createCipheriv, createDecipheriv } from 'node:crypto';
import { BackupArchiveError } from './archive-errors';
import { type ArchiveHeader, MAX_SEGMENTS, TAG_LENGTH, TRAILER_LENGTH, isValidTrailer, segmentNonce } from './archive-format';

/**
 * The STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015), as in age and Tink's streaming
 * AEAD: AES-256-GCM per segment, nonce = prefix || counter || final flag, the header as associated
 * data of every segment. A flipped byte fails one tag; a moved segment fails under its position's
 * counter; a cut stream lacks the segment sealed with the final flag.
 */
export class SegmentEncryptor {
  private pending: Buffer[] = [];
  private pendingLength = 0;
  private counter = 0;
  private finished = false;

  constructor(
    private readonly key: Buffer,
    private readonly header: Pick<ArchiveHeader, 'bytes' | 'noncePrefix' | 'segmentSize'>,
    private readonly sink: (segment: Buffer) => Promise<void>,
  ) {}

  get segments(): number {
    return this.counter;
  }

  async write(data: Buffer): Promise<void> {
    if (this.finished) throw new Error('the payload stream is already finished');
    if (data.length === 0) return;
    this.pending.push(data);
    this.pendingLength += data.length;
    const size = this.header.segmentSize;
    // Hold back at least one byte: a full segment may still turn out to be the final one.
    if (this.pendingLength <= size) return;
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingLength);
    let offset = 0;
    while (all.length - offset > size) {
      await this.seal(all.subarray(offset, offset + size), false);
      offset += size;
    }
    const rest = all.subarray(offset);
    this.pending = [rest];
    this.pendingLength = rest.length;
  }

  /** Seals what is left as the final segment. */
  async finish(): Promise<void> {
    if (this.finished) return;
    const rest = Buffer.concat(this.pending, this.pendingLength);
    this.pending = [];
    this.pendingLength = 0;
    await this.seal(rest, true);
    this.finished = true;
  }

  private async seal(plaintext: Buffer, final: boolean): Promise<void> {
    if (this.counter >= MAX_SEGMENTS) throw new RangeError('the archive payload exceeds 2^32 segments');
    const cipher = createCipheriv('aes-256-gcm', this.key, segmentNonce(this.header.noncePrefix, this.counter, final));
    cipher.setAAD(this.header.bytes);
    const sealed = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    this.counter += 1;
    await this.sink(sealed);
  }
}

export interface RandomAccessSource {
  read(position: number, length: number): Promise<Buffer>;
}

/** How many other positions a failed segment is tried at before it is called damaged. */
const REORDER_SEARCH_LIMIT = 4096;

/**
 * Decrypts and yields every segment's plaintext, in order. Where the payload ends comes from the
 * trailer (end magic and the file's length). Without a valid trailer the file was cut short, or its
 * last 16 bytes were damaged: the two are told apart by whether the payload still authenticates.
 */
export async function* decryptSegments(source: RandomAccessSource, fileSize: number, header: ArchiveHeader, key: Buffer, onSegment?: (bytesRead: number) => void): AsyncGenerator<Buffer> {
  const start = header.bytes.length;
  const trailerComplete = fileSize - start >= TRAILER_LENGTH && isValidTrailer(await source.read(fileSize - TRAILER_LENGTH, TRAILER_LENGTH), fileSize);
  const end = fileSize - TRAILER_LENGTH;
  const stored = header.segmentSize + TAG_LENGTH;
  const truncated = (detail: string) =>
    new BackupArchiveError('ARCHIVE_TRUNCATED', `the archive is truncated (${fileSize} bytes): ${detail}; it was cut short while being written, copied or uploaded`);
  if (end - start <= TAG_LENGTH) {
    if (!trailerComplete) throw truncated('it holds no complete segment');
    throw new BackupArchiveError('ARCHIVE_CORRUPT', 'the archive is damaged: its payload is shorter than one segment');
  }
  const count = Math.ceil((end - start) / stored);
  if (count > MAX_SEGMENTS) throw new BackupArchiveError('ARCHIVE_CORRUPT', 'the archive claims more than 2^32 segments');
  for (let index = 0; index < count; index++) {
    const position = start + index * stored;
    const final = index === count - 1;
    const sealed = await source.read(position, Math.min(stored, end - position));
    const plaintext = open(key, header, sealed, index, final);
    if (plaintext) {
      onSegment?.(position + sealed.length);
      yield plaintext;
      continue;
    }
    if (!trailerComplete) {
      // Without the trailer the assumed end is only a guess; every segment before the last one
      // lies wholly inside what was written, so only the last one can be a victim of the cut.
      if (final) throw truncated(`the stream stops inside segment ${index} without its end marker`);
    }
    throw diagnose(key, header, sealed, index, count, position);
  }
  if (!trailerComplete) {
    throw new BackupArchiveError('ARCHIVE_CORRUPT', `the archive is damaged: its end marker (the last ${TRAILER_LENGTH} bytes) was altered, although the payload itself is intact`);
  }
}

function open(key: Buffer, header: ArchiveHeader, sealed: Buffer, counter: number, final: boolean): Buffer | null {
  if (sealed.length <= TAG_LENGTH) return null;
  const decipher = createDecipheriv('aes-256-gcm', key, segmentNonce(header.noncePrefix, counter, final));
  decipher.setAAD(header.bytes);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_LENGTH));
  const plaintext = decipher.update(sealed.subarray(0, sealed.length - TAG_LENGTH));
  try {
    decipher.final();
    return plaintext;
  } catch {
    plaintext.fill(0);
    return null;
  }
}

/** A segment failed where it stands: is it an authentic segment from elsewhere, or damage? */
function diagnose(key: Buffer, header: ArchiveHeader, sealed: Buffer, index: number, count: number, position: number): BackupArchiveError {
  const found = (counter: number, final: boolean) => {
    const plaintext = open(key, header, sealed, counter, final);
    if (plaintext) plaintext.fill(0);
    return plaintext !== null;
  };
  const final = index === count - 1;
  if (found(index, !final)) {
    return final
      ? new BackupArchiveError('ARCHIVE_TRUNCATED', `the archive is truncated: its stream stops after segment ${index}, which is not the final segment (segments were removed from its end)`)
      : new BackupArchiveError('ARCHIVE_SEGMENTS_REORDERED', `the archive's segments are out of order: the final segment stands at position ${index} of ${count}`);
  }
  for (let distance = 1, tried = 0; distance < count && tried < REORDER_SEARCH_LIMIT; distance++) {
    for (const candidate of [index - distance, index + distance]) {
      if (candidate < 0 || candidate >= count) continue;
      tried += 1;
      if (found(candidate, false) || found(candidate, true)) {
        return new BackupArchiveError(
          'ARCHIVE_SEGMENTS_REORDERED',
          `the archive's segments are out of order: position ${index} holds segment ${candidate} (segments were reordered, duplicated or dropped)`,
        );
      }
    }
  }
  return new BackupArchiveError(
    'ARCHIVE_CORRUPT',
    `the archive is damaged: segment ${index} (bytes ${position}..${position + sealed.length - 1}) failed authentication; the file was altered or damaged`,
  );
}
