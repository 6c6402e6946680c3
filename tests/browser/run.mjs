// Browser test of the X-Ray web UI: `node tests/browser/run.mjs <config.json>`.
// Drives headless Chromium through what a person does; prints `ok - …` per check,
// exits non-zero (with a FAIL-<name>.png screenshot) on the first failure.
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.error('playwright-core is not installed: run `npm ci` in tests/browser (' + e.message + ')');
  process.exit(2);
}

const cfgPath = process.argv[2];
if (!cfgPath) {
  console.error('usage: node tests/browser/run.mjs <config.json>');
  process.exit(2);
}
const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
const T = 15000;
const shots = cfg.screenshots;
mkdirSync(shots, { recursive: true });
const url = (p) => cfg.base_url.replace(/\/$/, '') + p;
const enc = encodeURIComponent;

const browser = await chromium.launch({
  executablePath: cfg.chromium,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
const dialogs = [];
page.on('dialog', async (d) => {
  dialogs.push(d.message());
  await d.dismiss().catch(() => {});
});
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push('pageerror: ' + e.message));

let n = 0;
let current = 'start';
async function shot(p, name) {
  n += 1;
  await p.screenshot({ path: join(shots, String(n).padStart(2, '0') + '-' + name + '.png'), fullPage: true });
}
async function check(name, fn) {
  current = name;
  await fn();
  console.log('ok - ' + name);
}
const rows = (p, testid) => p.locator(`[data-testid="${testid}"]`);
async function waitRows(p, testid) {
  await p.waitForSelector(`[data-testid="${testid}"]`, { timeout: T });
}

try {
  // a. login
  await check('/ redirects to the login page with next=', async () => {
    await page.goto(url('/'));
    await page.waitForURL(/\/login\?/, { timeout: T });
    assert.match(page.url(), /[?&]next=/);
    await page.waitForSelector('form[data-testid="login-form"] input[name="token"][type="password"]', { timeout: T });
    assert.equal(await page.locator('form[data-testid="login-form"] input[name="next"]').count(), 1);
  });
  await check('a wrong token keeps the login page and shows an error', async () => {
    await page.fill('input[name="token"]', 'definitely-not-the-token');
    await Promise.all([page.waitForNavigation({ timeout: T }), page.click('[data-testid="login-submit"]')]);
    assert.match(new URL(page.url()).pathname, /^\/login/);
    await page.waitForSelector('[data-testid="error"]', { timeout: T });
    await shot(page, 'login');
  });
  await check('the right token lands on the executions list', async () => {
    await page.fill('input[name="token"]', cfg.token);
    await Promise.all([page.waitForNavigation({ timeout: T }), page.click('[data-testid="login-submit"]')]);
    await waitRows(page, 'execution-row');
    assert.doesNotMatch(new URL(page.url()).pathname, /^\/login/);
  });

  // b. list + filter
  await check('the list shows the small execution', async () => {
    const names = await rows(page, 'execution-row').locator('.col-name a').allTextContents();
    assert.ok(names.includes(cfg.small.name), `no row named ${cfg.small.name} in ${JSON.stringify(names)}`);
  });
  await check('filtering by status shows only matching rows', async () => {
    await page.selectOption('[data-testid="filter-status"]', 'ok');
    await page.click('[data-testid="filter-apply"]');
    await page.waitForURL(/status=ok/, { timeout: T });
    await page.waitForSelector('[data-testid="execution-row"], [data-testid="empty"]', { timeout: T });
    const st = await rows(page, 'execution-row').evaluateAll((els) => els.map((e) => e.getAttribute('data-status')));
    assert.ok(st.every((s) => s === 'ok'), `non-ok rows after filtering: ${JSON.stringify(st)}`);
  });
  await check('filtering by name shows only that name', async () => {
    await page.goto(url('/executions?name=' + enc(cfg.small.name)));
    await waitRows(page, 'execution-row');
    const names = await rows(page, 'execution-row').locator('.col-name a').allTextContents();
    assert.ok(names.length > 0 && names.every((x) => x === cfg.small.name), JSON.stringify(names));
    await shot(page, 'list');
  });

  // c. execution page
  await check('clicking the small execution opens its waterfall', async () => {
    await page.click(`[data-testid="execution-row"][data-execution-id="${cfg.small.execution_id}"]`);
    await page.waitForURL(new RegExp('/executions/' + cfg.small.execution_id), { timeout: T });
    await waitRows(page, 'waterfall-row');
    assert.ok((await rows(page, 'waterfall-row').count()) > 0);
  });
  await check('the execution page shows what its LLM calls cost, in total and per model', async () => {
    const cost = (await page.textContent('[data-testid="execution-cost"]')).trim();
    assert.ok(cost.startsWith(cfg.small.cost), `LLM cost ${JSON.stringify(cost)}, expected ${cfg.small.cost}`);
    assert.match(cost, /2 calls$/);
    await page.click('[data-testid="execution-llm"] > summary');
    const models = await rows(page, 'execution-llm-row').evaluateAll((els) => els.map((e) => e.firstChild.textContent));
    assert.deepEqual(models, ['gpt-4o', 'gpt-4o-mini']);
    // A tiny cost keeps its digits rather than reading as free.
    assert.equal(await rows(page, 'execution-llm-row').nth(1).locator('td').last().textContent(), '$0.000046');
    const total = await rows(page, 'execution-llm-row-total').locator('td').allTextContents();
    assert.equal(total[total.length - 1], cfg.small.cost, JSON.stringify(total));
    await shot(page, 'execution');
  });

  // d. decision step
  await check('the decision step shows input, output, decisions and the funnel', async () => {
    const row = page.locator(`[data-testid="waterfall-row"][data-step-id="${cfg.small.decision_step_id}"]`);
    await row.scrollIntoViewIfNeeded({ timeout: T });
    await row.click();
    await page.waitForSelector(`[data-testid="step-panel"][data-state="loaded"][data-step-id="${cfg.small.decision_step_id}"]`, { timeout: T });
    assert.ok(page.url().includes('/steps/' + cfg.small.decision_step_id));
    for (const id of ['step-input', 'step-output', 'decisions', 'funnel']) {
      assert.equal(await page.locator(`[data-testid="step-panel"] [data-testid="${id}"]`).count(), 1, `missing ${id}`);
    }
    assert.ok((await rows(page, 'decision-row').count()) > 0, 'no decision rows');
    assert.ok((await rows(page, 'funnel-row').count()) > 0, 'no funnel rows');
  });
  await check('the step panel says why first, with its reasoning job', async () => {
    const sections = await page.locator('[data-testid="step-panel"] .panel-sec').evaluateAll((els) => els.map((e) => e.getAttribute('data-testid')));
    assert.equal(sections[0], 'step-why', 'sections in order: ' + JSON.stringify(sections));
    assert.ok(sections.indexOf('step-input') > 0, JSON.stringify(sections));
    assert.equal((await page.textContent('[data-testid="step-panel"] [data-testid="why-text"]')).trim(), cfg.small.why);
    const job = page.locator('[data-testid="step-panel"] [data-testid="why-job"]');
    assert.equal(await job.getAttribute('data-status'), 'completed');
    assert.match(await job.textContent(), /completed llm · 1 attempt · /);
    assert.equal((await job.locator('[data-testid="why-model"]').textContent()).trim(), '· gpt-4o-mini · 1,200 + 40 tokens · $0.0002');
    await page.locator('[data-testid="step-panel"]').screenshot({ path: join(shots, String(++n).padStart(2, '0') + '-step-why.png') });
  });
  await check('the Rejected filter leaves only rejected decisions', async () => {
    await page.click('[data-testid="decision-filter-rejected"]');
    const v = await rows(page, 'decision-row').evaluateAll((els) => els.map((e) => e.getAttribute('data-verdict')));
    assert.ok(v.every((x) => x === 'rejected'), JSON.stringify(v));
    await shot(page, 'decisions');
    await page.click('[data-testid="decision-filter-all"]');
  });

  // e. why
  await check('the candidate link opens the why page', async () => {
    await page.locator('[data-testid="candidate-link"]', { hasText: cfg.small.candidate }).first().click();
    await page.waitForURL(/\/why\//, { timeout: T });
    await waitRows(page, 'why-entry');
    assert.equal((await page.textContent('[data-testid="candidate"]')).trim(), cfg.small.candidate);
    // Elsewhere: one row per other execution, however many decisions each holds.
    const others = await rows(page, 'elsewhere-execution').evaluateAll((els) => els.map((e) => e.getAttribute('data-execution-id')));
    assert.ok(others.length > 0, 'the candidate appears in other executions, but none is listed');
    assert.equal(new Set(others).size, others.length, 'an execution is listed twice: ' + JSON.stringify(others));
    assert.ok(!others.includes(cfg.small.execution_id), 'this execution is listed under Elsewhere');
    // The step that decided on it says why, as its panel does.
    const why = page.locator('[data-testid="why-step"]');
    assert.equal(await why.count(), 1, 'one step decided on the candidate');
    assert.equal(await why.getAttribute('data-step-id'), cfg.small.decision_step_id);
    assert.equal((await why.locator('[data-testid="why-text"]').textContent()).trim(), cfg.small.why);
    const job = why.locator('[data-testid="why-job"]');
    assert.equal(await job.getAttribute('data-status'), 'completed');
    assert.match(await job.textContent(), /completed llm · 1 attempt · .* · gpt-4o-mini · /);
    await shot(page, 'why');
  });
  await check('the why page shows a failed reasoning job and hostile text as text', async () => {
    await page.goto(url(path('executions', cfg.xss.execution_id, 'why', cfg.xss.candidate)));
    await waitRows(page, 'why-step');
    assert.equal((await page.textContent('[data-testid="candidate"]')).trim(), cfg.xss.candidate);
    const job = page.locator('[data-testid="why-step"] [data-testid="why-job"]');
    assert.equal(await job.getAttribute('data-status'), 'failed');
    assert.match(await job.textContent(), /failed llm · 3 attempts · HTTP 500: <script>/);
    assert.ok((await page.textContent('[data-testid="why-step"] [data-testid="why-text"]')).trim().length > 0);
    assert.equal(await page.evaluate(() => typeof window.__xss), 'undefined', 'window.__xss was set');
    assert.deepEqual(dialogs, [], 'a dialog fired');
    assert.equal(await page.locator('img[src="x"]').count(), 0, 'an <img src=x> made it into the DOM');
    await shot(page, 'why-xss');
  });

  // f. search
  await check('header search finds hits and a hit opens the step panel', async () => {
    await page.fill('[data-testid="search-input"]', cfg.small.search_word);
    await page.press('[data-testid="search-input"]', 'Enter');
    await page.waitForURL(/\/search\?q=/, { timeout: T });
    await waitRows(page, 'search-hit');
    await page.locator('[data-testid="search-hit"]').first().click();
    await page.waitForSelector('[data-testid="step-panel"][data-state="loaded"]', { timeout: T });
    await shot(page, 'search-hit');
  });

  // g. stats
  await check('/stats draws a chart and rows', async () => {
    await page.goto(url('/stats'));
    await page.waitForSelector('[data-testid="stats-row"], [data-testid="empty"]', { timeout: T });
    if ((await rows(page, 'stats-row').count()) === 0) {
      await page.selectOption('[data-testid="stats-since"]', 'all');
      await waitRows(page, 'stats-row');
    }
    assert.equal(await page.locator('[data-testid="stats-chart"] svg rect').count() > 0, true);
    await shot(page, 'stats');
  });

  // h. XSS
  await check('hostile captured data renders as text, never as markup', async () => {
    const resp = await page.goto(url(path('executions', cfg.xss.execution_id, 'steps', cfg.xss.step_id)));
    const csp = resp.headers()['content-security-policy'] || '';
    assert.ok(csp.includes("script-src 'self'"), 'CSP header missing or weak: ' + csp);
    await page.waitForSelector('[data-testid="step-panel"][data-state="loaded"]', { timeout: T });
    // Open every collapsed JSON node (twice: opening renders nested nodes).
    for (let i = 0; i < 4; i++) {
      await page.$$eval('[data-testid="step-panel"] details:not([open])', (ds) => ds.forEach((d) => { d.open = true; }));
      await page.waitForTimeout(50);
    }
    await page.$$eval('[data-testid="step-panel"] [data-testid="show-more"]', (bs) => bs.forEach((b) => b.click()));
    assert.equal(await page.evaluate(() => typeof window.__xss), 'undefined', 'window.__xss was set');
    assert.deepEqual(dialogs, [], 'a dialog fired');
    const text = await page.textContent('[data-testid="step-panel"]');
    assert.ok(text.includes('<script>'), 'the literal <script> text is not shown');
    const job = page.locator('[data-testid="step-panel"] [data-testid="why-job"]');
    assert.equal(await job.getAttribute('data-status'), 'failed');
    assert.match(await job.textContent(), /failed llm · 3 attempts · HTTP 500: <script>/);
    assert.equal(await page.locator('img[src="x"]').count(), 0, 'an <img src=x> made it into the DOM');
    assert.equal(await page.locator('[data-testid="step-panel"] script').count(), 0);
    await shot(page, 'xss');
  });
  await check('the XSS page in dark mode stays readable (screenshot)', async () => {
    await page.emulateMedia({ colorScheme: 'dark' });
    await shot(page, 'xss-dark');
    await page.emulateMedia({ colorScheme: 'light' });
  });

  // i. big execution
  await check('a big execution paints quickly and stays virtualised', async () => {
    const t = await firstPaint(page, cfg.big.execution_id);
    console.log(`first_paint_ms=${t} steps=${cfg.big.steps}`);
    const count = await rows(page, 'waterfall-row').count();
    assert.ok(count > 0 && count < 500, `DOM holds ${count} rows`);
    const before = await rows(page, 'waterfall-row').evaluateAll((els) => els.map((e) => e.getAttribute('data-step-id')));
    await page.$eval('[data-testid="waterfall"]', (el) => { el.scrollTop += 200 * 24; });
    await page.waitForFunction((ids) => {
      const now = [...document.querySelectorAll('[data-testid="waterfall-row"]')].map((e) => e.getAttribute('data-step-id'));
      return now.some((id) => !ids.includes(id));
    }, before, { timeout: T });
    assert.ok((await rows(page, 'waterfall-row').count()) < 500);
    const parent = page.locator('[data-testid="waterfall-row"]:not([data-children="0"]) [data-testid="wf-toggle"]').first();
    if (await parent.count()) {
      const total = await rows(page, 'waterfall-row').count();
      const id = await page.locator('[data-testid="waterfall-row"]:not([data-children="0"])').first().getAttribute('data-step-id');
      await parent.click();
      await page.waitForSelector(`[data-testid="waterfall-row"][data-step-id="${id}"][aria-expanded="true"]`, { timeout: T });
      console.log(`# expanded ${id} (rows in DOM before: ${total})`);
    }
    await shot(page, 'big');
  });

  // j. keyboard
  await check('keyboard: ArrowDown moves the selection and opens the panel, Enter keeps it open', async () => {
    await page.goto(url(path('executions', cfg.small.execution_id)));
    await waitRows(page, 'waterfall-row');
    await page.focus('[data-testid="waterfall"]');
    await page.keyboard.press('ArrowDown');
    const sel1 = await page.getAttribute('[data-testid="waterfall-row"][aria-selected="true"]', 'data-step-id', { timeout: T });
    await page.keyboard.press('ArrowDown');
    await page.waitForFunction((a) => {
      const s = document.querySelector('[data-testid="waterfall-row"][aria-selected="true"]');
      return s && s.getAttribute('data-step-id') !== a;
    }, sel1, { timeout: T });
    await page.keyboard.press('Enter');
    await page.waitForSelector('[data-testid="step-panel"][data-state="loaded"]', { timeout: T });
    const sel2 = await page.getAttribute('[data-testid="waterfall-row"][aria-selected="true"]', 'data-step-id');
    assert.equal(await page.getAttribute('[data-testid="step-panel"]', 'data-step-id'), sel2);
    assert.ok(page.url().includes('/steps/' + enc(sel2)), page.url());
    await shot(page, 'keyboard');
  });

  // optional measurements for BENCHMARKS.md
  for (const m of cfg.measure || []) {
    const times = [];
    for (let i = 0; i < 3; i++) {
      const p = await context.newPage();
      times.push(await firstPaint(p, m.execution_id));
      await p.close();
    }
    times.sort((a, b) => a - b);
    console.log(`first_paint label=${m.label} steps=${m.steps} median_ms=${times[1]}`);
    // What the execution page asks for first: the head with its first page of steps.
    for (const [what, p] of [['head', path('api', 'v1', 'executions', m.execution_id)],
      ['roots', path('api', 'v1', 'executions', m.execution_id, 'steps') + '?parent=root&limit=500']]) {
      const api = [];
      for (let i = 0; i < 5; i++) {
        const start = performance.now();
        const r = await fetch(url(p), { headers: { authorization: 'Bearer ' + cfg.token } });
        const body = await r.arrayBuffer();
        api.push(performance.now() - start);
        assert.equal(r.status, 200, `${p}: ${r.status}`);
        if (i === 0) console.log(`# ${what} ${m.label}: ${body.byteLength} bytes`);
      }
      api.sort((a, b) => a - b);
      console.log(`api label=${m.label} steps=${m.steps} request=${what} median_ms=${api[2].toFixed(1)}`);
    }
  }

  if (consoleErrors.length) console.log('# console errors seen (not fatal):\n# ' + consoleErrors.join('\n# '));
  await browser.close();
  console.log('all browser checks passed');
} catch (err) {
  console.error(`not ok - ${current}\n${err && err.stack ? err.stack : err}`);
  if (consoleErrors.length) console.error('console errors:\n' + consoleErrors.join('\n'));
  try {
    await page.screenshot({ path: join(shots, 'FAIL-' + current.replace(/[^a-z0-9]+/gi, '-').slice(0, 60) + '.png'), fullPage: true });
  } catch (_) { /* the page may be gone */ }
  await browser.close().catch(() => {});
  process.exit(1);
}

function path(...segs) {
  return '/' + segs.map((s) => enc(String(s))).join('/');
}

async function firstPaint(p, executionId) {
  const start = Date.now();
  await p.goto(url(path('executions', executionId)), { waitUntil: 'commit' });
  await p.waitForSelector('[data-testid="waterfall-row"]', { state: 'visible', timeout: 60000 });
  return Date.now() - start;
}
