export interface PemBlock {
  label: string;
  /** RFC 1421 headers, e.g. `Proc-Type: 4,ENCRYPTED` of a traditional encrypted key. */
  headers: string[];
  der: Buffer;
  /** The block as it appeared, for parsers (Node's createPrivateKey) that want PEM text. */
  text: string;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;
const BASE64_BODY = /^[A-Za-z0-9+/=\s]*$/;

/**
 * Every PEM block in a text, in order. Text between blocks (openssl's "Bag Attributes", comments) is
 * skipped; a block whose body is not base64 is skipped too, so garbage never reaches a DER parser.
 */
export function pemBlocks(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const match of text.matchAll(BLOCK)) {
    const lines = match[2]!.split(/\r?\n/);
    const headers: string[] = [];
    while (lines.length > 0 && /^[A-Za-z-]+:/.test(lines[0]!)) headers.push(lines.shift()!.trim());
    const body = lines.join('');
    if (!BASE64_BODY.test(body)) continue;
    blocks.push({ label: match[1]!, headers, der: Buffer.from(body.replace(/\s/g, ''), 'base64'), text: match[0] });
  }
  return blocks;
}

/** Canonical PEM: 64-character lines, LF line ends, a final LF. */
export function toPem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
