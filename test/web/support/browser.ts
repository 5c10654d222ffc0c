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

  /** `timezoneId`: the time zone the pages see (e.g. 'Asia/Tokyo'), for what they show in local time. */
  static async launch(name: string, options: { timezoneId?: string } = {}): Promise<Browser> {
    const profile = join(testDir(`chromium-${name}`), 'profile');
    mkdirSync(profile, { recursive: true });
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      ignoreHTTPSErrors: true,
      viewport: { width: 1280, height: 900 },
      ...(options.timezoneId ? { timezoneId: options.timezoneId } : {}),
    });
    const page = context.pages()[0] ?? (await context.newPage());
    return new Browser(context, page, name);
  }

  /**
   * The page as an operator meets it on a desktop (1280 px) and on a phone (390 px): a full-page
   * screenshot at each width, numbered in visiting order, and the text that overflows there (see
   * `overflowsOf`), kept in `overflows` for the test to assert. Leaves the page at 1280 px.
   */
  async shot(name: string, page: Page = this.page): Promise<string[]> {
    const problems: string[] = [];
    for (const width of WIDTHS) {
      await page.setViewportSize({ width, height: width > 600 ? 900 : 844 });
      this.count += 1;
      await page.screenshot({ path: join(this.shots, `${String(this.count).padStart(2, '0')}-${name}-${width}.png`), fullPage: true });
      for (const problem of await overflowsOf(page)) problems.push(`${name} at ${width} px: ${problem}`);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
    this.overflows.push(...problems);
    return problems;
  }

  /** What overflowed on every page shot so far: a test asserts it is empty. */
  readonly overflows: string[] = [];

  get screenshots(): number {
    return this.count;
  }

  async close(): Promise<void> {
    await this.context.close();
  }
}

const WIDTHS = [1280, 390] as const;

/**
 * Text that does not fit its box: the page wider than the viewport, an element whose text spills out
 * of it (wider content than box, where the box does not scroll or clip on purpose), or text placed
 * beyond the viewport's edges. Each as a short description of the element.
 */
export async function overflowsOf(page: Page): Promise<string[]> {
  return page.evaluate<string[]>(OVERFLOWS);
}

// Runs in the page (the tests' TypeScript has no DOM types): the checks `overflowsOf` names.
const OVERFLOWS = `(() => {
  const problems = [];
  const width = document.documentElement.clientWidth;
  const describe = (el) => {
    const text = (el.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 60);
    const cls = typeof el.className === 'string' && el.className.trim() ? '.' + el.className.trim().split(/\\s+/).join('.') : '';
    return '<' + el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + cls + '> "' + text + '"';
  };
  const insideScrollBox = (el) => {
    for (let box = el.parentElement; box && box !== document.body; box = box.parentElement) {
      if (/auto|scroll|hidden|clip/.test(getComputedStyle(box).overflowX)) return true;
    }
    return false;
  };
  if (document.documentElement.scrollWidth > width + 1) problems.push('the page is ' + document.documentElement.scrollWidth + ' px wide in a ' + width + ' px viewport');
  for (const el of Array.from(document.body.querySelectorAll('*'))) {
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden') continue;
    // Inside a box that scrolls or clips (a wide table's wrapper, an SVG), spilling is that box's business.
    if (insideScrollBox(el)) continue;
    const ownText = Array.from(el.childNodes).some((node) => node.nodeType === 3 && (node.textContent || '').trim() !== '');
    if (!ownText) continue;
    const clips = /auto|scroll|hidden|clip/.test(style.overflowX);
    if (!clips && el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1) problems.push(describe(el) + ' is ' + el.scrollWidth + ' px of text in a ' + el.clientWidth + ' px box');
    const box = el.getBoundingClientRect();
    if (box.width > 0 && (box.right > width + 1 || box.left < -1)) problems.push(describe(el) + ' reaches ' + Math.round(box.left) + '..' + Math.round(box.right) + ' px of a ' + width + ' px viewport');
  }
  return problems;
})()`;

/** The path of the page, without the origin (ports change across restarts). */
export function pathOf(page: Page): string {
  return new URL(page.url()).pathname;
}
