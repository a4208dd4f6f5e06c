// The demo page end to end in headless Chromium (Playwright):
//   node scripts/demo-e2e.mjs URL STEPS SCREENSHOT [DOWNLOAD]
// opens the page (its IndexedDB starts empty), reads the held-out accuracy, trains STEPS steps,
// reads it again (and saves the page's "Download the trained state" file to DOWNLOAD), reloads,
// and reads the step the page resumed at. Prints them as JSON.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, steps, screenshot, download] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "edgetune-chromium-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true, viewport: { width: 900, height: 900 },
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"],
});
const demo = (page) => page.evaluate(() => window.edgetuneDemo);
const ready = (page) => page.waitForFunction(() => window.edgetuneDemo?.ready || window.edgetuneDemo?.error, null, { timeout: 600000 });
let code = 0;
try {
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
} catch (e) {
  console.error(`error: ${e.message}`);
  code = 2;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
