// Opens weir's dashboard in Debian's headless Chromium (driven by playwright-core), checks
// that the graph shows every stage by name and that a chart updates, and saves a
// screenshot. Usage: node dashboard.mjs URL SCREENSHOT.png stage1,stage2,...
// Prints what it found; exits non-zero on the first thing missing.
import { chromium } from "playwright-core";

const [url, screenshot, stageList] = process.argv.slice(2);
const stages = stageList.split(",");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // No sandbox as root; no background networking on a machine without network access.
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  page.on("pageerror", e => errors.push(e.message));
  await page.goto(url);
  for (const stage of stages) {
    await page.waitForSelector(`#graph g.stage[data-stage="${stage}"]`, { timeout: 20000 });
  }
  const names = await page.$$eval("#graph g.stage .stage-name", nodes => nodes.map(n => n.textContent));
  const found = stages.filter(s => names.includes(s));
  console.log(`stages found: ${found.length} (${found.join(", ")})`);
  if (found.length !== stages.length) throw new Error(`graph shows ${names}, expected ${stages}`);
  const edges = await page.$$eval("#graph text.edge-label", nodes => nodes.map(n => n.textContent));
  console.log(`edge labels: ${edges.join(" | ")}`);

  // The throughput chart gains a point every second: read it twice.
  const chart = async () => page.$eval("#throughput", s => [Number(s.dataset.points || 0), s.dataset.last || ""]);
  await page.waitForFunction(() => Number(document.querySelector("#throughput").dataset.points || 0) > 0, null, { timeout: 20000 });
  const before = await chart();
  await page.waitForFunction(
    ([points, last]) => {
      const s = document.querySelector("#throughput");
      return Number(s.dataset.points) !== points || s.dataset.last !== last;
    },
    before,
    { timeout: 20000 },
  );
  const after = await chart();
  console.log(`throughput chart updated: ${before[0]} points (last ${before[1]}) -> ${after[0]} points (last ${after[1]})`);
  await page.waitForFunction(() => Number(document.querySelector("#durations").dataset.points || 0) >= 2, null, { timeout: 20000 });
  await page.waitForFunction(() => document.querySelectorAll("#progress tbody tr").length > 0, null, { timeout: 20000 });
  const rows = await page.$$eval("#progress tbody tr", r => r.length);
  const checkpoints = await page.$$eval("#checkpoints tbody tr", r => r.length);
  const header = await page.$eval("header", h => h.innerText.replace(/\s+/g, " "));
  console.log(`progress rows: ${rows}, checkpoint rows: ${checkpoints}`);
  console.log(`header: ${header}`);
  await page.screenshot({ path: screenshot, fullPage: true });
  if (errors.length) throw new Error(`errors in the page: ${errors.join("; ")}`);
} finally {
  await browser.close();
}
