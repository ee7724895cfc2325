#!/usr/bin/env node
// Browser test of a workspace, end to end: a real Chromium (Debian's, driven
// by playwright-core) signs in to a running feuilled, opens the user's
// workspace on its own origin and checks that this origin is isolated from
// feuilled's.
//
//   node tests/e2e/workspace.mjs --public-url http://127.0.0.1:PORT [--handle alice]
//        [--workspace-origin 'http://{id}.ws.localhost:{port}'] [--editor-text 'feuille-standin editor']
//
// feuilled must run with --dev-login (the stand-in editor image is fine).
// Needs `npm ci` in tests/e2e first. The browser is /usr/bin/chromium unless
// FEUILLE_CHROMIUM names another; it runs headless with --no-sandbox (the
// tests run as root). Chromium resolves every *.localhost name to loopback by
// itself, so no /etc/hosts entry is needed for the workspace origin.
//
// Steps (one line each; exit 0 when all pass, 1 with the reason otherwise):
//   a. /login's dev-login form (POST /auth/dev) signs in as the handle and
//      302s to /dashboard; /api/me gives the user's id.
//   b. /u/{id}/ 302s to {workspace origin}/_feuille/enter?ticket=..., which
//      sets the workspace's cookie and 302s to {workspace origin}/u/{id}/;
//      the "Starting your workspace" page (503) reloads itself until the
//      editor answers (up to 45 s): the page ends on the workspace origin
//      showing the editor's text.
//   c. A WebSocket to {workspace origin}/u/{id}/events echoes "hello-e2e".
//   d. Isolation, from the workspace origin: feuilled's /api/me (public
//      origin, with credentials) is unreadable (no CORS grant); /api/me on
//      the workspace origin is 404; no feuille_session cookie is visible
//      there (neither in document.cookie nor in the browser's jar).
//
// Every wait is bounded (30 s, 45 s for the workspace's start, 10 s for the
// echo) and the whole run stops after 60 s.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const OVERALL_MS = 60_000;
const STEP_MS = 30_000;
const START_MS = 45_000;
const ECHO_MS = 10_000;

const USAGE = `usage: node tests/e2e/workspace.mjs --public-url URL [--handle HANDLE]
         [--workspace-origin TEMPLATE] [--editor-text TEXT]
  --public-url        feuilled's public URL, e.g. http://127.0.0.1:8080 (required)
  --handle            the dev-login handle (default: alice)
  --workspace-origin  as feuilled's option of that name (default: http://{id}.ws.localhost:{port})
  --editor-text       text the editor's page shows (default: feuille-standin editor)
  env FEUILLE_CHROMIUM  the browser (default: /usr/bin/chromium)`;

// --- arguments (by hand: --name value or --name=value) ---------------------
function parseArgs(argv) {
  const known = ['public-url', 'handle', 'workspace-origin', 'editor-text'];
  const out = { handle: 'alice', 'workspace-origin': 'http://{id}.ws.localhost:{port}',
                'editor-text': 'feuille-standin editor' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') { console.log(USAGE); process.exit(0); }
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!m || !known.includes(m[1])) usageError(`unknown argument ${JSON.stringify(arg)}`);
    let value = m[2];
    if (value === undefined) {
      if (i + 1 >= argv.length) usageError(`--${m[1]} needs a value`);
      value = argv[++i];
    }
    out[m[1]] = value;
  }
  if (!out['public-url']) usageError('--public-url is required');
  let pub;
  try { pub = new URL(out['public-url']); } catch { usageError(`--public-url: not a URL: ${out['public-url']}`); }
  if (pub.protocol !== 'http:' && pub.protocol !== 'https:') usageError('--public-url must be http(s)://');
  if (!/^[A-Za-z0-9-]{1,39}$/.test(out.handle)) usageError('--handle: 1 to 39 letters, digits or dashes');
  return { publicUrl: pub.origin, publicPort: pub.port || (pub.protocol === 'https:' ? '443' : '80'),
           handle: out.handle, originTemplate: out['workspace-origin'], editorText: out['editor-text'] };
}

function usageError(message) {
  console.error(`workspace.mjs: ${message}\n${USAGE}`);
  process.exit(2);
}

// --- helpers ---------------------------------------------------------------
const started = Date.now();
const deadline = started + OVERALL_MS;
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
// A wait's timeout: its own bound, cut to what is left of the overall one.
const budget = (ms) => Math.max(1, Math.min(ms, deadline - Date.now()));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let current = 'setup';
async function step(name, fn) {
  current = name;
  const t0 = Date.now();
  const detail = await fn();
  console.log(`ok   ${name}${detail ? ': ' + detail : ''} (${Date.now() - t0} ms)`);
}

// Races a promise against a timer (page.evaluate has no timeout of its own).
function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A response as "302 URL", its ticket (a one-time credential) elided.
const hop = (response) => `${response.status()} ${response.url().replace(/([?&]ticket=)[^&]*/, '$1...')}`;
// The chain of redirects that ended in this response, first request first.
function redirectChain(response) {
  const chain = [];
  for (let r = response.request(); r; r = r.redirectedFrom()) chain.unshift(r);
  return chain;
}

// --- the test --------------------------------------------------------------
const opts = parseArgs(process.argv.slice(2));
const executablePath = process.env.FEUILLE_CHROMIUM || '/usr/bin/chromium';
const { version: playwrightVersion } = createRequire(import.meta.url)('playwright-core/package.json');
let browser;

// The overall bound: whatever hangs, stop (closing the browser) at 60 s.
const watchdog = setTimeout(() => {
  console.error(`FAIL ${current}: the whole run took over ${OVERALL_MS / 1000} s`);
  const hard = setTimeout(() => process.exit(1), 5000);
  Promise.resolve(browser?.close()).catch(() => {}).finally(() => { clearTimeout(hard); process.exit(1); });
}, OVERALL_MS);

async function run() {
  browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'], timeout: budget(STEP_MS) });
  console.log(`chromium ${browser.version()} (${executablePath}), playwright-core ${playwrightVersion}, ` +
              `feuilled at ${opts.publicUrl}`);
  const context = await browser.newContext();
  context.setDefaultTimeout(STEP_MS);
  context.setDefaultNavigationTimeout(STEP_MS);
  const page = await context.newPage();
  const { publicUrl, handle } = opts;
  let id, wsOrigin;

  await step(`a. dev login as ${handle}`, async () => {
    await page.goto(`${publicUrl}/login`, { timeout: budget(STEP_MS) });
    const form = page.locator('form[method="post"][action="/auth/dev"]');
    await form.locator('input[name="handle"]').fill(handle, { timeout: budget(STEP_MS) });
    const isDashboard = (url) => { const u = new URL(url); return u.origin === publicUrl && u.pathname === '/dashboard'; };
    const [dashboard] = await Promise.all([
      page.waitForResponse((r) => r.request().isNavigationRequest() && isDashboard(r.url()), { timeout: budget(STEP_MS) }),
      form.locator('button[type="submit"], input[type="submit"]').first().click({ timeout: budget(STEP_MS) }),
    ]);
    await page.waitForURL((u) => isDashboard(u.href), { timeout: budget(STEP_MS) });
    const chain = redirectChain(dashboard);
    const post = chain[0];
    assert.ok(chain.length === 2 && post.method() === 'POST' && new URL(post.url()).pathname === '/auth/dev',
              `/dashboard was not reached by a redirect from POST /auth/dev: ${chain.map((r) => `${r.method()} ${r.url()}`).join(' -> ')}`);
    const postStatus = (await post.response())?.status();
    assert.equal(postStatus, 302, `POST /auth/dev answered ${postStatus}, not 302`);
    assert.ok(dashboard.ok(), `/dashboard answered ${dashboard.status()}`);

    const me = await within(budget(STEP_MS), page.evaluate(() => fetch('/api/me').then(async (r) => {
      if (!r.ok) throw new Error(`/api/me answered ${r.status}: ${(await r.text()).slice(0, 200)}`);
      return r.json();
    })), 'GET /api/me');
    assert.equal(String(me.handle).toLowerCase(), handle.toLowerCase(), `/api/me names ${me.handle}, not ${handle}`);
    id = String(me.id ?? '');
    assert.match(id, /^[A-Za-z0-9-]+$/, `/api/me's id ${JSON.stringify(me.id)} cannot be a host name label`);
    wsOrigin = new URL(opts.originTemplate.replaceAll('{id}', id).replaceAll('{port}', opts.publicPort)).origin;
    return `302 to /dashboard, id ${id}`;
  });

  await step('b. open the workspace', async () => {
    const target = `${wsOrigin}/u/${id}/`;
    let first;
    try {
      first = await page.goto(`${publicUrl}/u/${id}/`, { waitUntil: 'commit', timeout: budget(STEP_MS) });
    } catch (e) {
      // The starting page may reload before goto's own navigation settles.
      if (!/interrupted by another navigation|ERR_ABORTED/.test(e.message)) throw e;
    }
    let route = '';
    if (first) {
      const chain = redirectChain(first);
      const urls = chain.map((r) => new URL(r.url()));
      route = (await Promise.all(chain.map(async (r) => hop(await r.response())))).join(' -> ');
      assert.ok(urls.length === 3 && urls[0].origin === publicUrl &&
                urls[1].origin === wsOrigin && urls[1].pathname === '/_feuille/enter' && urls[1].searchParams.has('ticket') &&
                urls[2].href === target,
                `expected /u/${id}/ -> ${wsOrigin}/_feuille/enter?ticket=... -> ${target}; got ${route}`);
    }

    // Wait for the editor: the starting page reloads itself meanwhile.
    const waitStart = Date.now(), until = waitStart + budget(START_MS);
    let starting = 0, last = { url: '', title: '', text: '' };
    page.on('response', (r) => {
      if (r.request().isNavigationRequest() && r.frame() === page.mainFrame() && r.status() === 503) starting++;
    });
    if (first?.status() === 503) starting++;
    for (;;) {
      const url = page.url();
      if (new URL(url).origin === wsOrigin) {
        try {
          last = { url, ...await within(5000, page.evaluate(() => ({ title: document.title, text: document.body ? document.body.innerText : '' })), 'reading the page') };
        } catch { /* between two documents: look again */ }
        if (last.text.includes(opts.editorText)) break;
      } else {
        last = { url, title: '', text: '' };
      }
      if (Date.now() >= until) {
        throw new Error(`after ${((Date.now() - waitStart) / 1000).toFixed(0)} s no editor: the page is ${url} (title ${JSON.stringify(last.title)}, ` +
                        `body ${JSON.stringify(last.text.slice(0, 300))}); expected ${wsOrigin} showing ${JSON.stringify(opts.editorText)}`);
      }
      await sleep(250);
    }
    const final = new URL(page.url());
    assert.equal(final.origin, wsOrigin, `the editor's page is on ${final.origin}, not the workspace origin`);
    assert.ok(!final.searchParams.has('ticket'), `the ticket stayed in the URL: ${final.href}`);
    return `${route || 'redirects not seen'}; ${starting} starting page(s) (503) before the editor at ${final.href}`;
  });

  await step('c. WebSocket echo', async () => {
    const path = `/u/${id}/events`;
    const echoed = await within(budget(ECHO_MS + 2000), page.evaluate(({ path, text, ms }) => new Promise((resolve, reject) => {
      const ws = new WebSocket(location.origin.replace('http', 'ws') + path);
      let errored = false;
      const timer = setTimeout(() => { reject(new Error(`no echo within ${ms} ms (readyState ${ws.readyState})`)); ws.close(); }, ms);
      ws.onopen = () => ws.send(text);
      ws.onmessage = (e) => {
        clearTimeout(timer);
        resolve(typeof e.data === 'string' ? e.data : `[binary ${e.data.size ?? e.data.byteLength} bytes]`);
        ws.close();
      };
      ws.onerror = () => { errored = true; };  // the close event follows, with its code
      ws.onclose = (e) => {
        clearTimeout(timer);
        reject(new Error(`${errored ? 'failed and ' : ''}closed before the echo: code ${e.code} ${JSON.stringify(e.reason)}`));
      };
    }), { path, text: 'hello-e2e', ms: ECHO_MS }), 'the WebSocket');
    assert.equal(echoed, 'hello-e2e', `the editor sent back ${JSON.stringify(echoed)}`);
    return `${wsOrigin.replace('http', 'ws')}${path} echoed "hello-e2e"`;
  });

  await step('d. isolation from feuilled\'s origin', async () => {
    const cross = await within(budget(STEP_MS), page.evaluate(async (url) => {
      try {
        const r = await fetch(url, { credentials: 'include' });
        let body = '';
        try { body = (await r.text()).slice(0, 200); } catch { /* unreadable */ }
        return { threw: false, type: r.type, status: r.status, body };
      } catch (e) {
        return { threw: true, error: String(e) };
      }
    }, `${publicUrl}/api/me`), 'the cross-origin fetch');
    assert.ok(cross.threw || cross.type === 'opaque',
              `${publicUrl}/api/me is readable from ${wsOrigin}: ${cross.type} ${cross.status} ${cross.body}`);

    const local = await within(budget(STEP_MS), page.evaluate(() => fetch('/api/me').then((r) => r.status)), 'GET /api/me');
    assert.equal(local, 404, `${wsOrigin}/api/me answered ${local}, not 404`);

    const cookie = await page.evaluate(() => document.cookie);
    assert.ok(!cookie.includes('feuille_session'), `document.cookie on ${wsOrigin} has feuille_session: ${cookie}`);
    const jar = (await context.cookies(wsOrigin)).map((c) => c.name);
    assert.ok(!jar.includes('feuille_session'), `the browser sends feuille_session to ${wsOrigin}`);
    return `cross-origin /api/me ${cross.threw ? 'rejected (' + cross.error + ')' : 'opaque'}; ` +
           `${wsOrigin}/api/me 404; cookies there: ${jar.join(', ') || 'none'}`;
  });

  await step('e. a cookie tossed by another workspace', async () => {
    // A script on a sibling origin under the workspace domain (another
    // workspace's page) sets feuille_ws for the whole domain with a longer
    // Path: the browser now sends two to every workspace, that one first.
    const domain = new URL(wsOrigin).hostname.split('.').slice(1).join('.');
    const sibling = new URL(opts.originTemplate.replaceAll('{id}', '00000000-0000-4000-8000-00000000beef')
      .replaceAll('{port}', opts.publicPort)).origin;
    await page.goto(`${sibling}/`, { timeout: budget(STEP_MS) });
    await page.evaluate((d) => { document.cookie = `feuille_ws=tossed; Domain=${d}; Path=/u/`; }, domain);
    const tossed = (await context.cookies(wsOrigin + `/u/${id}/`)).filter((c) => c.name === 'feuille_ws');
    assert.equal(tossed.length, 2, `the toss did not take: the browser holds ${tossed.length} feuille_ws for ${wsOrigin}`);
    // The victim still reaches their workspace: feuilled believes neither,
    // clears both, and the way in through a fresh ticket works.
    await page.goto(`${wsOrigin}/u/${id}/`, { waitUntil: 'commit', timeout: budget(STEP_MS) }).catch((e) => {
      if (!/interrupted by another navigation|ERR_ABORTED/.test(e.message)) throw e;
    });
    const until = Date.now() + budget(START_MS);
    let text = '';
    while (Date.now() < until) {
      if (new URL(page.url()).origin === wsOrigin) {
        try { text = await within(5000, page.evaluate(() => document.body ? document.body.innerText : ''), 'reading the page'); } catch { /* navigating */ }
        if (text.includes(opts.editorText)) break;
      }
      await sleep(250);
    }
    assert.ok(text.includes(opts.editorText), `after the toss ${page.url()} is not the editor: ${text.slice(0, 200)}`);
    const left = (await context.cookies(wsOrigin + `/u/${id}/`)).filter((c) => c.name === 'feuille_ws');
    assert.ok(left.length === 1 && left[0].value !== 'tossed' && left[0].httpOnly,
              `feuille_ws cookies left: ${JSON.stringify(left.map((c) => ({ domain: c.domain, path: c.path, httpOnly: c.httpOnly })))}`);
    return `tossed from ${sibling} (Domain=${domain}; Path=/u/); back in the editor with one feuille_ws`;
  });
}

let code = 0;
try {
  await run();
  console.log(`PASS workspace end to end in ${elapsed()}`);
} catch (e) {
  code = 1;
  const message = e instanceof assert.AssertionError ? e.message : (e?.message ?? String(e)).split('\n')[0];
  console.error(`FAIL ${current}: ${message}`);
} finally {
  await browser?.close().catch(() => {});
  clearTimeout(watchdog);
}
process.exit(code);
