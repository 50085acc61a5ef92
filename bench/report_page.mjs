// Loads pages in Debian's headless chromium (playwright-core), each a few times in a fresh tab, and prints how long
// each took to render: from navigation start to the second animation frame after `load` (parsed, scripts run, laid
// out and painted). Usage: node report_page.mjs <runs> <file url>...; bench/report_page.py decides what it means.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [runs, ...urls] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "vmkeeper-bench-"));
const out = {};
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium", headless: true, viewport: { width: 1280, height: 900 },
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--no-first-run", "--allow-file-access-from-files"],
  });
  for (let i = 0; i < Number(runs); i++) {
    for (const url of urls) { // alternated, so a busy moment costs both alike
      const page = await context.newPage();
      const errors = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.goto(url, { waitUntil: "load", timeout: 120000 });
      const ms = await page.evaluate(() => new Promise((done) =>
        requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now())))));
      const count = await page.evaluate(() => document.getElementById("vm-count")?.textContent ?? null);
      (out[url] ??= []).push({ ms, count, errors });
      await page.close();
    }
  }
} catch (e) {
  out.error = String(e.stack || e);
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(out));
process.exitCode = out.error ? 1 : 0;
