import type { SetupCodeNotice } from './setup-code';

/**
 * What the operator reads on the console, in plain lines beside the JSON log: where the server
 * listens, the TLS certificate it serves, and the one-time set-up code (as Jenkins prints its
 * initial password). The set-up code is written here and nowhere else: never to the logger.
 */
export class OperatorConsole {
  constructor(private readonly out: (line: string) => void = (line) => process.stdout.write(`${line}\n`)) {}

  say(message: string): void {
    this.out(`keyward: ${message}`);
  }

  serving(url: string, fingerprint: string): void {
    this.say(`serving ${url} (TLS SHA-256 ${fingerprint})`);
  }

  tlsSwapped(fingerprint: string, notAfter: string): void {
    this.say(`TLS certificate replaced without restart: now serving TLS SHA-256 ${fingerprint}, valid until ${notAfter}`);
  }

  /** The code this node made, or where the code another node made was printed (this node never knows it). */
  setupCode(notice: SetupCodeNotice, url: string): void {
    this.out('');
    this.out('*************************************************************');
    if ('code' in notice) {
      this.out('keyward: the set-up wizard is locked. Unlock it in the browser with this one-time code:');
      this.out('');
      this.out(`    set-up code: ${notice.code}`);
      this.out('');
      this.out(`keyward: open ${url} — any node accepts it; the code works once; restart keyward for a new one.`);
    } else {
      this.out('keyward: the set-up wizard is locked. Its one-time set-up code was printed on the console of');
      this.out(`keyward: the node ${notice.printedBy} at ${notice.printedAt} (read that node's log).`);
      this.out(`keyward: enter it at ${url} — this node accepts it too; restart that node for a new code.`);
    }
    this.out('*************************************************************');
    this.out('');
  }
}
