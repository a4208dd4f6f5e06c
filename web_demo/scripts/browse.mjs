// Opens a page in headless Chromium (Playwright) and prints what it leaves in window.edgetuneReport:
//   node scripts/browse.mjs URL [--timeout SECONDS] [--screenshot FILE]
// Exit 2 with the page's error (window.edgetuneError) or a timeout. CHROMIUM overrides /usr/bin/chromium.
import { withBrowser } from "./chromium.mjs";

const args = process.argv.slice(2);
const opt = (name, fallback) => { const i = args.indexOf(name); return i >= 0 ? args.splice(i, 2)[1] : fallback; };
const timeout = Number(opt("--timeout", "600")) * 1000;
const screenshot = opt("--screenshot", null);
const [url] = args;
let code = 0;
try {
  await withBrowser(async (browser) => {
    const page = await browser.newPage();
    const logs = [];
    page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
    await page.goto(url);
    await page.waitForFunction(() => window.edgetuneReport !== undefined || window.edgetuneError !== undefined, null, { timeout });
    const { report, error } = await page.evaluate(() => ({ report: window.edgetuneReport, error: window.edgetuneError }));
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    if (error !== undefined) {
      console.error(`error: ${error}\n${logs.join("\n")}`);
      code = 2;
    } else console.log(JSON.stringify(report));
  });
} catch (e) {
  console.error(`error: ${e.message}`);
  code = 2;
}
process.exit(code);
