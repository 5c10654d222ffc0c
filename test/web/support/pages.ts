import type { Page } from 'playwright-core';
import type { Browser } from './browser';
import { pathOf } from './browser';

/** Clicks a submit button and waits for the page that the POST (and its redirect) lands on. */
export async function submit(page: Page, selector: string): Promise<number> {
  const [response] = await Promise.all([page.waitForNavigation(), page.click(selector)]);
  return response?.status() ?? 0;
}

/** Opens a path and records the page it lands on. */
export async function visit(browser: Browser, base: string, path: string, shot: string): Promise<string> {
  await browser.page.goto(`${base}${path}`);
  await browser.shot(shot);
  return pathOf(browser.page);
}

export async function text(page: Page, selector: string): Promise<string> {
  return ((await page.textContent(selector)) ?? '').trim();
}

/** The field error shown beside a form field, or null. */
export async function fieldError(page: Page, field: string): Promise<string | null> {
  const element = await page.$(`#${field}-error`);
  return element ? ((await element.textContent()) ?? '').trim() : null;
}

export async function unlock(browser: Browser, code: string): Promise<void> {
  const page = browser.page;
  if (pathOf(page) !== '/setup-wizard/unlock/') throw new Error(`expected the set-up code page, at ${page.url()}`);
  await browser.shot('unlock');
  await page.fill('#code', code.toLowerCase());
  await submit(page, 'button[type=submit]');
}

export async function logIn(browser: Browser, username: string, password: string): Promise<void> {
  const page = browser.page;
  if (pathOf(page) !== '/login') throw new Error(`expected the login page, at ${page.url()}`);
  await browser.shot('login');
  await page.fill('#username', username);
  await page.fill('#password', password);
  await submit(page, 'button[type=submit]');
}
