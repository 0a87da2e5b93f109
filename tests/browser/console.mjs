// Drives the web console in headless Chromium like an operator: a wrong key,
// the right one, the Live page until the stream shows `connections`, its
// Stream page, forbid (confirmed), the stream leaving Live, resume on
// Forbidden, rotate a key on Rules. Prints what it saw as one JSON line; stops
// at the first step that fails (`failed` names it).
//   node console.mjs <console url> <key> <domain/app/stream> <connections> <screenshot dir>
import { chromium } from 'playwright-core';

const [, , url, key, stream, connections, shots] = process.argv;
const [domain, app, name] = stream.split('/');
const out = { steps: [] };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
const step = async (what, fn) => {
  try {
    await fn();
    out.steps.push(what);
  } catch (e) {
    out.failed = `${what}: ${e.message.split('\n')[0]}`;
    throw e;
  }
};
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 720 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // Failed calls the page shows itself (a wrong key, a stream no longer online)
  // are the browser's console errors too: kept apart, with their URL.
  out.failedCalls = [];
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const where = (m.location().url || '').split('?')[0];
    if (m.text().startsWith('Failed to load resource')) out.failedCalls.push(`${where}: ${m.text().split('status of ')[1]}`);
    else errors.push(m.text());
  });
  await page.goto(url);
  await step('a wrong key is told plainly', async () => {
    await page.fill('#key', 'notTheKey1');
    await page.click('#login-form button');
    await page.waitForSelector('#login-error:text("Wrong key")', { timeout: 10000 });
    out.wrongKey = await page.textContent('#login-error');
  });
  await step('the right key signs in', async () => {
    await page.fill('#key', key);
    await page.click('#login-form button');
    await page.waitForSelector('#nav:not([hidden])', { timeout: 10000 });
  });
  const row = `tr[data-stream="${stream}"]`;
  await step(`Live shows the stream with ${connections} connections within 5 s`, async () => {
    const started = Date.now();
    await page.waitForFunction(([sel, n]) => {
      const r = document.querySelector(sel);
      return r && r.querySelector('[data-connections]').textContent === n;
    }, [row, connections], { timeout: 5000 });
    out.liveAfterMs = Date.now() - started;
    await page.waitForTimeout(4500); // a bitrate needs two samples
    await page.screenshot({ path: `${shots}/console-live.png` });
  });
  await step('the Stream page lists its connections', async () => {
    await page.click(row);
    await page.waitForFunction((n) => document.querySelectorAll('tr[data-connection]').length === Number(n), connections, { timeout: 10000 });
    await page.waitForTimeout(6500); // a few sparkline samples
    await page.screenshot({ path: `${shots}/console-stream.png` });
  });
  await step('forbid, confirmed, and the stream leaves Live', async () => {
    await page.click('#act-forbid');
    await page.click('.confirm [data-confirm]');
    await page.waitForSelector('#notice:text("Forbid: done")', { timeout: 10000 });
    await page.click('nav a[href="#/live"]');
    await page.waitForSelector('#no-streams', { timeout: 15000 });
  });
  await step('Forbidden lists it; resume', async () => {
    await page.click('nav a[href="#/forbidden"]');
    const forbid = `tr[data-forbid="${stream}"]`;
    await page.waitForSelector(forbid, { timeout: 10000 });
    await page.click(`${forbid} button.resume`);
    await page.waitForSelector('#none-forbidden', { timeout: 10000 });
  });
  await step('rotate the pull key on Rules', async () => {
    await page.click('nav a[href="#/rules"]');
    await page.selectOption('#domain', domain);
    const rule = `tr[data-rule="*/pull"] button.rotate`;
    await page.waitForSelector(rule, { timeout: 10000 });
    await page.click(rule);
    await page.waitForSelector('#notice:text("New key")', { timeout: 10000 });
    out.newKey = (await page.textContent('#notice')).split(': ').pop().trim();
    await page.waitForSelector('tr[data-rule="*/pull"] td:text("api")', { timeout: 10000 });
  });
  await step('the Fleet page shows the state', async () => {
    await page.click('nav a[href="#/fleet"]');
    await page.waitForSelector('#fleet td:text("file")', { timeout: 10000 });
  });
  out.pageErrors = errors;
} catch (e) {
  out.failed = out.failed || String(e);
} finally {
  console.log(JSON.stringify(out));
  await browser.close();
}
