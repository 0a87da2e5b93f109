// Opens a page in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) and waits until its player has played `seconds` of video or
// hit a fatal error; prints the page's state as one JSON line.
//   CHROMIUM_ARGS='--flag\n--flag' node play.mjs <page url> <seconds>
import { chromium } from 'playwright-core';

const [, , url, seconds] = process.argv;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required',
    // More from the test, one per line (e.g. --host-resolver-rules=…).
    ...(process.env.CHROMIUM_ARGS || '').split('\n').filter(Boolean),
  ],
});
let state = { t: 0, fatal: 'page did not load' };
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.error('page:', m.text()));
  await page.goto(url);
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    state = await page.evaluate(() => window.state);
    if (state.fatal || state.t >= Number(seconds)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
} finally {
  console.log(JSON.stringify(state));
  await browser.close();
}
