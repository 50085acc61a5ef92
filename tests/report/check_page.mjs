// Drives the report page in Debian's headless chromium (playwright-core, no downloaded browser) and
// prints what it saw as JSON; tests/report/test_report_browser.py decides what is right.
// Usage: node check_page.mjs <page url> <screenshot dir> [<10,000-VM page url> [<the page, its VM table as data>]]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, outDir, bigUrl, dataUrl] = process.argv.slice(2);
const seen = { requests: [], console: [], pageErrors: [], dialogs: [] };
const profile = mkdtempSync(join(tmpdir(), "vmkeeper-chromium-")); // a fresh profile every run

function watch(page) {
  page.on("console", (m) => seen.console.push({ type: m.type(), text: m.text() }));
  page.on("pageerror", (e) => seen.pageErrors.push(String(e)));
  page.on("dialog", (d) => {
    seen.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
}

// Rows a person would see (not hidden by the filter), in table order.
const visibleRows = (page) =>
  page.$$eval("#vm-table tbody tr", (rows) =>
    rows.filter((r) => r.checkVisibility()).map((r) => ({ state: r.dataset.state, name: r.cells[0].textContent })),
  );
const countText = (page) => page.textContent("#vm-count");
// Every VM row's cells as drawn: text, class, sort key and tooltip.
const cells = (page) =>
  page.$$eval("#vm-table tbody tr", (rows) => rows.map((r) => ({ state: r.dataset.state, cells: [...r.cells].map((c) =>
    ({ text: c.textContent, cls: c.className, sort: c.dataset.sort ?? null, health: c.dataset.health ?? null })),
    title: r.cells[0].title })));
const widths = (page) =>
  page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    // The first screen: the verdict and the ranked actions as shown, where they are.
    verdict: document.getElementById("verdict")?.textContent ?? null,
    verdictBox: (({ left, right, top }) => ({ left, right, top }))(document.getElementById("verdict").getBoundingClientRect()),
    actions: [...document.querySelectorAll("#action-list li")].map((li) => ({ rank: li.dataset.rank, vm: li.dataset.vm,
      right: li.getBoundingClientRect().right })),
    // Each VM's name and state badge: inside the viewport (no sideways scroll needed to read them)?
    vmStates: [...document.querySelectorAll("#vm-table tbody tr")].slice(0, 60).map((r) => {
      const badge = r.querySelector(".badge").getBoundingClientRect(), name = r.cells[0].getBoundingClientRect();
      return { state: r.dataset.state, left: Math.min(badge.left, name.left), right: Math.max(badge.right, name.right) };
    }),
    tables: [...document.querySelectorAll(".scroll")].map((s) => ({ scroll: s.scrollWidth, client: s.clientWidth })),
  }));

async function sortColumn(page, title) {
  const index = await page.$$eval("#vm-table thead th", (ths, t) => ths.findIndex((th) => th.textContent.startsWith(t)), title);
  await page.locator("#vm-table thead th").nth(index).locator("button").click();
  return page.$$eval(
    "#vm-table tbody tr",
    (rows, i) => rows.filter((r) => r.checkVisibility()).map((r) => r.cells[i].dataset.sort),
    index,
  );
}

const out = {};
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    viewport: { width: 1280, height: 900 },
  });
  context.setDefaultTimeout(10000);
  context.on("request", (r) => seen.requests.push(r.url())); // every request of every page
  const page = context.pages()[0] ?? (await context.newPage());
  watch(page);
  await page.goto(url, { waitUntil: "load" });

  const rows = await visibleRows(page);
  out.initial = { count: await countText(page), rows: rows.length, controlsShown: await page.isVisible("#vm-controls") };
  out.inlineCells = await cells(page);
  out.names = rows.map((r) => r.name);
  await page.screenshot({ path: join(outDir, "report-1280.png"), fullPage: true });

  await page.click('#filter-state button[data-filter="breached"]');
  out.breached = { count: await countText(page), rows: await visibleRows(page) };
  await page.click('#filter-state button[data-filter="all"]');
  out.all = { count: await countText(page), rows: (await visibleRows(page)).length };

  await page.fill("#filter-name", "WEB-0");
  out.named = { count: await countText(page), rows: await visibleRows(page) };
  await page.fill("#filter-name", "");

  out.sortAsc = await sortColumn(page, "Snapshot set");
  out.sortDesc = await sortColumn(page, "Snapshot set");
  out.ariaSort = await page.getAttribute("#vm-table thead th:nth-child(9)", "aria-sort");
  // The Site Recovery replica column: every row's cell as shown, then sorted by it.
  out.replica = await page.$$eval("#vm-table", ([t]) => {
    const i = [...t.tHead.rows[0].cells].findIndex((th) => th.textContent.startsWith("Replica"));
    return [...t.tBodies[0].rows].map((r) => ({ name: r.cells[0].textContent, text: r.cells[i].textContent,
      cls: r.cells[i].className, title: r.cells[i].title, health: r.cells[i].dataset.health ?? null }));
  });
  out.replicaSort = await sortColumn(page, "Replica");

  out.bars = await page.$$eval("#points-chart rect[data-count]", (rects) =>
    rects.map((r) => ({ day: r.dataset.day, kind: r.dataset.kind, count: Number(r.dataset.count),
      height: Number(r.getAttribute("height")), tooltip: r.querySelector("title")?.textContent ?? "" })),
  );
  // DR drills: every mark as drawn, the last-per-VM table, and one VM standing out while a mark is hovered.
  out.drills = await page.$$eval("#drill-chart [data-drill]", (marks) =>
    marks.map((m) => {
      const box = m.getBoundingClientRect();
      return { id: m.dataset.drill, result: m.dataset.result, rto: m.dataset.rto, vm: m.parentElement.dataset.vm,
        width: box.width, height: box.height, visible: m.checkVisibility(),
        tooltip: m.querySelector("title")?.textContent ?? "" };
    }),
  );
  out.drillTable = await page.$$eval("#drill-table tbody tr", (rows) =>
    rows.map((r) => ({ id: r.dataset.drill, cells: [...r.cells].map((c) => c.textContent) })),
  );
  const hovered = page.locator('#drill-chart [data-result="passed"]').first();
  await hovered.hover();
  out.drillHover = {
    vm: await hovered.evaluate((m) => m.parentElement.dataset.vm),
    series: await page.$$eval("#drill-chart .series", (gs) =>
      gs.map((g) => ({ vm: g.dataset.vm, opacity: getComputedStyle(g).opacity })),
    ),
  };
  await page.mouse.move(0, 0);
  await page.evaluate(() => { // as opened: the page and each table's own scroller at their start
    window.scrollTo(0, 0);
    document.querySelectorAll(".scroll").forEach((s) => { s.scrollLeft = 0; s.scrollTop = 0; });
  });
  out.wide = await widths(page);

  await page.setViewportSize({ width: 375, height: 812 });
  await page.reload({ waitUntil: "load" }); // as a phone opens it: unsorted, unscrolled
  out.phone = await widths(page);
  await page.screenshot({ path: join(outDir, "report-phone.png"), fullPage: true });

  // Without JavaScript: the plain table, every row shown, no controls.
  const plain = await context.newPage();
  watch(plain);
  const cdp = await context.newCDPSession(plain);
  await cdp.send("Emulation.setScriptExecutionDisabled", { value: true });
  await plain.goto(url, { waitUntil: "load" });
  out.noScript = { rows: (await visibleRows(plain)).length, controlsShown: await plain.isVisible("#vm-controls"),
    count: await countText(plain) };
  await plain.close();

  if (dataUrl) {
    // The same page with its VM table sent as data: the script draws the same rows.
    const asData = await context.newPage();
    watch(asData);
    await asData.goto(dataUrl, { waitUntil: "load" });
    out.dataCells = await cells(asData);
    out.dataCount = await countText(asData);
    await asData.click('#filter-state button[data-filter="breached"]');
    out.dataBreached = { count: await countText(asData), rows: await visibleRows(asData) };
    await asData.close();
  }

  if (bigUrl) {
    // 10,000 VMs: each action timed inside the page, from the click to the count text it updates.
    const big = await context.newPage();
    watch(big);
    const start = Date.now();
    await big.goto(bigUrl, { waitUntil: "load", timeout: 60000 }); // 7.6 MB of HTML
    out.big = { loadMs: Date.now() - start };
    out.big.filter = await big.evaluate(() => {
      const t = performance.now();
      document.querySelector('#filter-state button[data-filter="breached"]').click();
      return { ms: performance.now() - t, count: document.getElementById("vm-count").textContent };
    });
    out.big.text = await big.evaluate(() => {
      const input = document.getElementById("filter-name");
      const t = performance.now();
      input.value = "db-";
      input.dispatchEvent(new Event("input"));
      return { ms: performance.now() - t, count: document.getElementById("vm-count").textContent };
    });
    out.big.sort = await big.evaluate(() => {
      const t = performance.now();
      document.querySelectorAll("#vm-table thead th button")[8].click();
      return { ms: performance.now() - t };
    });
    out.big.drawn = await big.evaluate(() => ({ rows: document.querySelectorAll("#vm-table tbody tr").length,
      more: document.getElementById("vm-more").textContent, moreShown: !document.getElementById("vm-more").hidden }));
    await big.close();
  }
} catch (e) {
  out.error = String(e.stack || e); // reported with what was seen so far (console, page errors)
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify({ ...out, ...seen }));
process.exitCode = out.error ? 1 : 0;
