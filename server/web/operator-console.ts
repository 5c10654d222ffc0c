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

  setupCode(code: string, url: string): void {
    this.out('');
    this.out('*************************************************************');
    this.out('keyward: the set-up wizard is locked. Unlock it in the browser with this one-time code:');
    this.out('');
    this.out(`    set-up code: ${code}`);
    this.out('');
    this.out(`keyward: open ${url} — the code works once; restart keyward for a new one.`);
    this.out('*************************************************************');
    this.out('');
  }
}
