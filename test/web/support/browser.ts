import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BrowserContext, chromium, Page } from 'playwright-core';
import { testDir } from '../../support/run-dir';

export const CHROMIUM = '/usr/bin/chromium';

/**
 * Debian's Chromium, headless, driven by playwright-core (never `playwright install`), with a fresh
 * profile under the run directory (so the secret scan reads it too) and a screenshot of every page.
 */
export class Browser {
  readonly shots: string;
  private count = 0;

  private constructor(
    readonly context: BrowserContext,
    readonly page: Page,
    name: string,
  ) {
    this.shots = testDir(`screenshots-${name}`);
  }

  static async launch(name: string): Promise<Browser> {
    const profile = join(testDir(`chromium-${name}`), 'profile');
    mkdirSync(profile, { recursive: true });
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      ignoreHTTPSErrors: true,
      viewport: { width: 1280, height: 900 },
    });
    const page = context.pages()[0] ?? (await context.newPage());
    return new Browser(context, page, name);
  }

  /** Saves a full-page screenshot, numbered in visiting order. */
  async shot(name: string, page: Page = this.page): Promise<string> {
    this.count += 1;
    const file = join(this.shots, `${String(this.count).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return file;
  }

  get screenshots(): number {
    return this.count;
  }

  async close(): Promise<void> {
    await this.context.close();
  }
}

/** The path of the page, without the origin (ports change across restarts). */
export function pathOf(page: Page): string {
  return new URL(page.url()).pathname;
}
