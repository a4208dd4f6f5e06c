// Headless Chromium for the scripts here (Playwright): a fresh profile, the flags a container needs.
// CHROMIUM overrides /usr/bin/chromium. withBrowser(fn, options) runs fn(context) and always cleans up.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function withBrowser(fn, options = {}) {
  const profile = mkdtempSync(join(tmpdir(), "edgetune-chromium-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true, ...options,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--no-first-run"],
  });
  try {
    return await fn(browser);
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
