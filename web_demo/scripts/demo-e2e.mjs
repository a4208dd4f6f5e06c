// The demo page end to end in headless Chromium (Playwright):
//   node scripts/demo-e2e.mjs URL STEPS SCREENSHOT [DOWNLOAD]
// opens the page (its IndexedDB starts empty), reads the held-out accuracy, trains STEPS steps,
// reads it again (and saves the page's "Download the trained state" file to DOWNLOAD), reloads,
// and reads the step the page resumed at. Prints them as JSON.
import { withBrowser } from "./chromium.mjs";

const [url, steps, screenshot, download] = process.argv.slice(2);
const demo = (page) => page.evaluate(() => window.edgetuneDemo);
const ready = (page) => page.waitForFunction(() => window.edgetuneDemo?.ready || window.edgetuneDemo?.error, null, { timeout: 600000 });
let code = 0;
try {
  await withBrowser(async (browser) => {
    const page = await browser.newPage();
    await page.goto(url);
    await ready(page);
    const first = await demo(page);
    if (first.error) throw new Error(first.error);
    await page.fill("#steps", String(steps));
    await page.click("#train");
    await page.waitForFunction((n) => window.edgetuneDemo.step >= n && !window.edgetuneDemo.training || window.edgetuneDemo.error,
                               Number(steps), { timeout: 600000 });
    const trained = await demo(page);
    if (trained.error) throw new Error(trained.error);
    await page.screenshot({ path: screenshot, fullPage: true });
    if (download) {
      const [file] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
      await file.saveAs(download);
    }
    await page.reload();
    await ready(page);
    const resumed = await demo(page);
    const status = await page.textContent("#status");
    console.log(JSON.stringify({ before: first.accuracy, after: trained.accuracy, losses: trained.losses, ms: trained.ms,
                                 step: trained.step, resumed_step: resumed.step, resumed_accuracy: resumed.accuracy, status }));
  }, { viewport: { width: 900, height: 900 }, acceptDownloads: true });
} catch (e) {
  console.error(`error: ${e.message}`);
  code = 2;
}
process.exit(code);
