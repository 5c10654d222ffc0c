import type { Page } from 'playwright-core';
import { lifecycleMachine } from '../../machines/lifecycle-machine';
import { newSecret } from '../support/secrets';
import { Browser, pathOf } from './support/browser';
import { KeywardServer } from './support/keyward-server';
import { submit, text, unlock } from './support/pages';

jest.setTimeout(180_000);

interface Box {
  left: number;
  top: number;
  right: number;
  bottom: number;
  width: number;
  height: number;
}

const VIEWPORT = '.svg-pan-zoom_viewport';

/** The drawing's box, its frame's, the page's viewport, and the drawing's scale (its transform's `a`). */
async function geometry(page: Page, view: 'compact' | 'full') {
  return page.evaluate<{ drawing: Box; frame: Box; viewport: { width: number; height: number }; scale: number }>(`(() => {
    const box = (el) => { const r = el.getBoundingClientRect(); return { left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height }; };
    const frame = document.getElementById('graph-${view}');
    const drawing = frame.querySelector('${VIEWPORT}');
    return { drawing: box(drawing), frame: box(frame), viewport: { width: window.innerWidth, height: window.innerHeight }, scale: drawing.transform.baseVal.consolidate().matrix.a };
  })()`);
}

/** The drawing lies inside its frame, fills it in one dimension, and the frame inside the viewport. */
function expectFitted({ drawing, frame, viewport }: { drawing: Box; frame: Box; viewport: { width: number; height: number } }): void {
  expect(drawing.left).toBeGreaterThanOrEqual(frame.left - 1);
  expect(drawing.right).toBeLessThanOrEqual(frame.right + 1);
  expect(drawing.top).toBeGreaterThanOrEqual(frame.top - 1);
  expect(drawing.bottom).toBeLessThanOrEqual(frame.bottom + 1);
  expect(Math.max(drawing.width / frame.width, drawing.height / frame.height)).toBeGreaterThan(0.9);
  expect(frame.left).toBeGreaterThanOrEqual(0);
  expect(frame.top).toBeGreaterThanOrEqual(0);
  expect(frame.right).toBeLessThanOrEqual(viewport.width);
  expect(frame.bottom).toBeLessThanOrEqual(viewport.height);
}

async function scaleOf(page: Page): Promise<number> {
  return (await geometry(page, 'compact')).scale;
}

/** Does `act`, then waits for the drawing's scale to move by more than 10% (svg-pan-zoom draws on the next frame). */
async function scaleChanges(page: Page, from: number, act: () => Promise<void>): Promise<number> {
  await act();
  return until(page, async () => {
    const scale = await scaleOf(page);
    return Math.abs(scale - from) > from * 0.1 ? scale : null;
  });
}

/** Polls from the test (the page's CSP forbids the evaluated strings of waitForFunction). */
async function until<T>(page: Page, probe: () => Promise<T | null>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting on the page');
    await page.waitForTimeout(100);
  }
}

/**
 * /inspect in Chromium during the wizard, after a set-up whose PKCS#11 module does not load: the
 * overview of the top-level states fits the screen at 1280 and 390 px with the current one marked,
 * zooms, switches to the whole machine, shows the failed event with its reason, and follows the
 * next step without losing the reader's zoom.
 */
describe('web: the lifecycle visualizer', () => {
  const server = new KeywardServer('inspect');
  let browser: Browser;

  beforeAll(async () => {
    await server.start();
    browser = await Browser.launch('inspect');
  });

  afterAll(async () => {
    await browser?.close();
    await server.stop();
  });

  it('fits, zooms, shows the top-level states, the failed event with its reason, and follows', async () => {
    const page = browser.page;
    const violations: string[] = [];
    await page.goto(`${server.url}/`);
    await unlock(browser, await server.setupCode());
    expect(pathOf(page)).toBe('/setup-wizard/crypto-storage-setup/');
    await page.check('input[name=storageType][value=softhsm]');
    await submit(page, 'button[type=submit]');

    // ── a module that does not load: the effect fails, the transition log keeps why ──
    expect(pathOf(page)).toBe('/setup-wizard/hsm-setup/softhsm/');
    const pin = newSecret('pin');
    const soPin = newSecret('sopin');
    await page.fill('#modulePath', '/nonexistent/libpkcs11-missing.so');
    await page.fill('#pin', pin);
    await page.fill('#pinConfirm', pin);
    await page.fill('#soPin', soPin);
    await page.fill('#soPinConfirm', soPin);
    expect(await submit(page, 'button[type=submit]')).toBe(400);

    const viewer = await browser.context.newPage();
    // No script error, no CSP refusal (of the vendored script, a style, an evaluation) on the page.
    viewer.on('console', (message) => {
      if (message.type() === 'error' || /Content Security Policy|Refused to/i.test(message.text())) violations.push(message.text());
    });
    viewer.on('pageerror', (error) => violations.push(error.message));
    // Everything the page loads comes from keyward itself, svg-pan-zoom included.
    const requested: string[] = [];
    viewer.on('request', (request) => requested.push(request.url()));
    await viewer.goto(`${server.url}/inspect`);
    const state = (await (await viewer.request.get(`${server.url}/inspect/state.json`)).json()) as {
      state: string;
      lastError: { message: string; code: string } | null;
      history: Array<{ eventType: string; failure: { message: string; code: string } | null }>;
    };
    expect(state.lastError?.code).toBe('MODULE_MISSING');

    // ── the overview fits the screen on load, at 1280 px and at 390 px ──
    await viewer.waitForSelector(`#graph-compact ${VIEWPORT}`);
    expectFitted(await geometry(viewer, 'compact'));
    // Labels a person can read: the current state's name at least 12 px high.
    expect(await viewer.$eval('#graph-compact g.node.current text', (el: { getBoundingClientRect(): { height: number } }) => el.getBoundingClientRect().height)).toBeGreaterThanOrEqual(12);
    await viewer.setViewportSize({ width: 390, height: 844 });
    await viewer.waitForTimeout(300);
    await viewer.$eval('#graph', (el: { scrollIntoView(options: { block: string }): void }) => el.scrollIntoView({ block: 'center' }));
    expectFitted(await geometry(viewer, 'compact'));
    await viewer.setViewportSize({ width: 1280, height: 900 });
    await viewer.waitForTimeout(300);

    // ── the top-level states, the current one (and its path) marked ──
    const topLevel = Object.keys(lifecycleMachine.root.states);
    const titles = await viewer.$$eval('#graph-compact svg.state-overview g.node > title', (els: Array<{ textContent: string | null }>) => els.map((el) => el.textContent));
    expect(titles.filter((title) => title !== 'any state').sort()).toEqual([...topLevel].sort());
    const path = state.state.split('.');
    expect(await viewer.$$eval('#graph-compact g.node.current', (els: Array<{ getAttribute(name: string): string | null }>) => els.map((el) => el.getAttribute('data-state')))).toEqual([path[0]]);
    expect(await text(viewer, '#graph-compact g.node.current')).toContain(path.slice(1).join(' › '));
    expect(await viewer.$$eval('#current-path li', (els: Array<{ textContent: string | null }>) => els.map((el) => el.textContent))).toEqual(path);
    // The events accepted now, as labels: nothing on the page sends them.
    const chips = await viewer.$$eval('#accepts .chip', (els: Array<{ textContent: string | null }>) => els.map((el) => el.textContent));
    expect(chips.length).toBeGreaterThan(0);
    expect(await viewer.$$('#accepts button, #accepts form, #accepts a')).toHaveLength(0);

    // ── the failed event with its reason, the code as a detail ──
    const failed = state.history.find((row) => row.failure !== null)!;
    expect(failed.eventType).toMatch(/:error$/);
    const reason = await text(viewer, '#history tr.failure-reason .reason');
    expect(reason).toBe(`Failed: ${failed.failure!.message}`);
    expect(reason).toMatch(/libpkcs11-missing\.so/);
    expect(await text(viewer, '#history tr.failure-reason code')).toBe('MODULE_MISSING');
    expect(await text(viewer, '#last-error-message')).toBe(state.lastError!.message);

    // ── zoom: the buttons, Ctrl and the wheel, and back to the fit ──
    const fitted = await scaleOf(viewer);
    const zoomed = await scaleChanges(viewer, fitted, () => viewer.click('#zoom-in'));
    expect(zoomed).toBeGreaterThan(fitted * 1.2);
    const frame = (await geometry(viewer, 'compact')).frame;
    const wheeled = await scaleChanges(viewer, zoomed, async () => {
      await viewer.mouse.move(frame.left + frame.width / 2, frame.top + frame.height / 2);
      await viewer.keyboard.down('Control');
      await viewer.mouse.wheel(0, -200);
      await viewer.keyboard.up('Control');
    });
    expect(wheeled).toBeGreaterThan(zoomed);
    expect(await scaleChanges(viewer, wheeled, () => viewer.click('#zoom-fit'))).toBeCloseTo(fitted, 3);

    // ── the whole machine, fitted too, its current leaf marked ──
    await viewer.click('.view-switch a[data-view=full]');
    await viewer.waitForSelector(`#graph-full ${VIEWPORT}`);
    expect(await viewer.isHidden('#graph-compact')).toBe(true);
    expect(new URL(viewer.url()).search).toBe('?view=full');
    expectFitted(await geometry(viewer, 'full'));
    await browser.shot('inspect-whole-machine', viewer);
    // "Current state" brings it to the middle of the frame, at 1.5 px a point.
    await viewer.click('#zoom-current');
    const focused = await until(viewer, async () => {
      const now = await geometry(viewer, 'full');
      return Math.abs(now.scale - 1.5) < 0.01 ? now : null;
    });
    const current = await viewer.$eval('#graph-full g.node.current', (el: { getBoundingClientRect(): Box }) => el.getBoundingClientRect());
    expect(Math.abs(current.left + current.width / 2 - (focused.frame.left + focused.frame.width / 2))).toBeLessThan(3);
    expect(Math.abs(current.top + current.height / 2 - (focused.frame.top + focused.frame.height / 2))).toBeLessThan(3);
    await browser.shot('inspect-current-state', viewer);
    expect(await viewer.getAttribute('#graph-full svg.state-graph g.node.current', 'data-state')).toBe(`lifecycle.${state.state}`);
    await viewer.click('.view-switch a[data-view=compact]');
    expect(await viewer.isVisible('#graph-compact svg.state-overview')).toBe(true);

    // ── history rows break between words, never inside one (at 390 px, where space is short) ──
    await viewer.setViewportSize({ width: 390, height: 844 });
    const splitWords = await viewer.evaluate<string[]>(`Array.from(document.querySelectorAll('#history td.mono, #current-state')).flatMap((cell) =>
      Array.from(cell.childNodes).filter((node) => node.nodeType === 3).filter((node) => { const range = document.createRange(); range.selectNodeContents(node); return range.getClientRects().length > 1; }).map((node) => node.textContent))`);
    expect(splitWords).toEqual([]);
    expect(await browser.shot('inspect', viewer)).toEqual([]);

    // ── it follows the next step, keeping the reader's zoom ──
    await viewer.click('#zoom-in');
    const kept = await scaleChanges(viewer, fitted, async () => undefined);
    await page.fill('#modulePath', '/usr/lib/softhsm/libsofthsm2.so');
    await page.fill('#pin', pin);
    await page.fill('#pinConfirm', pin);
    await page.fill('#soPin', soPin);
    await page.fill('#soPinConfirm', soPin);
    await submit(page, 'button[type=submit]');
    expect(pathOf(page)).toBe('/setup-wizard/setup_mode/');
    await until(viewer, async () => ((await text(viewer, '#graph-compact g.node.current')).includes('hsmSetup') ? null : true)).catch((e) => {
      throw new Error(`${e} ${violations.join(' | ')}`);
    });
    await viewer.waitForSelector(`#graph-compact ${VIEWPORT}`);
    expect(await scaleOf(viewer)).toBeCloseTo(kept, 3);
    await browser.shot('inspect-followed', viewer);
    expect(violations).toEqual([]);
    expect(requested).toContain(`${server.url}/static/vendor/svg-pan-zoom/svg-pan-zoom.min.js`);
    expect(requested.filter((url) => !url.startsWith(`${server.url}/`))).toEqual([]);
    await viewer.close();
  });
});
