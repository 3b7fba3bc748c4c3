// A tour of MLflow's web UI in a real browser (Debian's chromium, driven by playwright-core),
// for tests/e2e/test_ui.py, which starts the server, seeds it and asserts on what this reports.
//
//   node tests/e2e/browser/tour.mjs PLAN.json > RESULTS.json
//
// PLAN (written by test_ui.py):
//   base_url        the UI's address, ending in "/" (the server root, or /w/<workspace>/)
//   screenshot_dir  where each page's screenshot goes (<name>.png)
//   chromium        the browser binary (playwright-core never downloads one)
//   timeout_ms      how long one step may wait for what it expects to see
//   signin          null, or {api_key, see}: sign in through <base>signin before the pages
//                   (then wait for each text of `see`), and sign out after them
//   pages           [{name, route, steps, local_storage}]: `route` is appended to base_url (a
//                   hash route such as "#/experiments"); `local_storage` ({key: value}) is set
//                   before the page loads; `steps` run in order, each an object with one verb:
//     {see: [text...]}            each text becomes visible (a substring of an element's text)
//     {not_see: [text...]}        none of these is visible (checked once, after the page settled)
//     {see_in: {within, texts}}   each text becomes visible inside the last element the CSS
//                                  selector `within` matches (e.g. the open drawer); any visible
//                                  element counts (hidden copies, such as a tooltip's, do not)
//     {no_element: selector}      no visible element matches the CSS selector (checked once,
//                                  after the page settled), e.g. "[role=alert]" for banners
//     {click: {role, name}}       or {click: {text}}: clicks the first match; `exact: true`
//                                  matches the whole text, `within` (CSS) looks only inside
//                                  the last element it matches (e.g. an open popover)
//     {fill: {placeholder, value, press}}  types into the input whose placeholder contains
//                                  `placeholder`, then presses `press` (e.g. "Enter")
//     {press: key}                a key press on the page (e.g. "Escape")
//     {count: {selector, at_least}}  at least that many elements match the CSS selector
//     {image: {width, height}}    an <img> of exactly that natural size has loaded and decoded
//     {screenshot: path}          a screenshot to an extra path (the README's)
//
// RESULTS (stdout, JSON): {pages: [...], signin, signout (null without `signin`), browser, ms},
//   where each page is
//   {name, url, ms, failure (null, or the first step that failed and why), bad_responses
//    (every 4xx/5xx the page received: method, url, status, body), graphql_errors (GraphQL
//    answers with `errors` or an `apiError`), page_errors (uncaught exceptions), api_calls
//    (method, url, status, request body, X-MLFLOW-WORKSPACE header), screenshot}.
// A step that fails ends its page (the rest of the page would only time out too), never the
// tour: every page is visited and reported. Progress goes to stderr.

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';

// playwright-core lives in tests/e2e/node (installed by scripts/setup-node.sh from its lock file).
const require = createRequire(new URL('../node/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const base = plan.base_url;
const timeout = plan.timeout_ms ?? 20000;
const BODY_SNIPPET = 600;

const log = (...args) => process.stderr.write(`[tour] ${args.join(' ')}\n`);

// What a request is, for the report: the UI's own API calls, and not the bundle's files.
const isStatic = (url) => /\/static-files\//.test(url);

function describeStep(step) {
  const text = JSON.stringify(step);
  return text.length > 160 ? `${text.slice(0, 160)}...` : text;
}

/** Follows one page's network traffic: every response, failures, GraphQL errors, in-flight count. */
class Traffic {
  constructor(page) {
    this.badResponses = [];
    this.graphqlErrors = [];
    this.apiCalls = [];
    this.pageErrors = [];
    this.inflight = new Set();
    this.lastActivity = Date.now();
    this.pending = []; // body reads still running
    page.on('request', (request) => {
      if (isStatic(request.url())) return;
      this.inflight.add(request);
      this.lastActivity = Date.now();
    });
    const done = (request) => {
      this.inflight.delete(request);
      this.lastActivity = Date.now();
    };
    page.on('requestfinished', done);
    page.on('requestfailed', (request) => {
      done(request);
      if (!isStatic(request.url()) && !/ERR_ABORTED/.test(request.failure()?.errorText ?? '')) {
        this.badResponses.push({
          method: request.method(), url: request.url(), status: 0,
          body: `request failed: ${request.failure()?.errorText}`,
        });
      }
    });
    page.on('response', (response) => this.pending.push(this.onResponse(response)));
    page.on('pageerror', (error) => this.pageErrors.push(String(error.message).slice(0, BODY_SNIPPET)));
  }

  async onResponse(response) {
    const request = response.request();
    const url = response.url();
    const status = response.status();
    if (isStatic(url) && status < 400) return;
    const isGraphql = new URL(url).pathname.endsWith('/graphql');
    let body = '';
    if (status >= 400 || isGraphql) {
      try {
        body = await response.text();
      } catch (error) {
        body = `<body unavailable: ${error.message}>`;
      }
    }
    const requestBody = request.postData() ?? '';
    if (request.resourceType() === 'fetch' || request.resourceType() === 'xhr' || isGraphql) {
      this.apiCalls.push({
        method: request.method(), url, status,
        request_body: requestBody.slice(0, BODY_SNIPPET),
        workspace_header: (await request.allHeaders())['x-mlflow-workspace'] ?? null,
      });
    }
    if (status >= 400) {
      this.badResponses.push({
        method: request.method(), url, status, body: body.slice(0, BODY_SNIPPET),
        request_body: requestBody.slice(0, 300),
      });
    }
    if (isGraphql && status < 400) {
      let operation = '';
      try {
        operation = JSON.parse(requestBody).operationName ?? '';
      } catch {}
      let parsed = null;
      try {
        parsed = JSON.parse(body);
      } catch {
        this.graphqlErrors.push({ url, operation, errors: `not JSON: ${body.slice(0, 200)}` });
        return;
      }
      const apiErrors = [];
      // MLflow's GraphQL answers a failed REST call inside `data` as `apiError`.
      const walk = (node) => {
        if (node && typeof node === 'object') {
          if (node.apiError) apiErrors.push(node.apiError);
          Object.values(node).forEach(walk);
        }
      };
      walk(parsed.data);
      if (parsed.errors || apiErrors.length) {
        this.graphqlErrors.push({
          url, operation,
          errors: JSON.stringify(parsed.errors ?? apiErrors).slice(0, BODY_SNIPPET),
        });
      }
    }
  }

  /** Waits until no API request has been in flight for `quietMs` (at most `maxMs`). */
  async settle(page, quietMs = 600, maxMs = 8000) {
    const deadline = Date.now() + maxMs;
    while (Date.now() < deadline) {
      if (this.inflight.size === 0 && Date.now() - this.lastActivity >= quietMs) break;
      await page.waitForTimeout(100);
    }
    await Promise.allSettled(this.pending);
  }
}

async function runStep(page, step) {
  const [[verb, arg]] = Object.entries(step);
  switch (verb) {
    case 'see':
      for (const text of arg) {
        await page.getByText(text, { exact: false }).first().waitFor({ state: 'visible', timeout });
      }
      return;
    case 'see_in': {
      const scope = page.locator(arg.within).last();
      for (const text of arg.texts) {
        await scope.getByText(text, { exact: false }).filter({ visible: true }).first()
          .waitFor({ state: 'visible', timeout });
      }
      return;
    }
    case 'no_element': {
      for (const element of await page.locator(arg).all()) {
        if (await element.isVisible()) {
          throw new Error(`${arg} is visible: ${JSON.stringify((await element.innerText()).slice(0, 200))}`);
        }
      }
      return;
    }
    case 'not_see':
      for (const text of arg) {
        if (await page.getByText(text, { exact: false }).first().isVisible()) {
          throw new Error(`${JSON.stringify(text)} is visible`);
        }
      }
      return;
    case 'click': {
      const scope = arg.within ? page.locator(arg.within).last() : page;
      const target = arg.role
        ? scope.getByRole(arg.role, { name: arg.name, exact: arg.exact ?? false })
        : scope.getByText(arg.text, { exact: arg.exact ?? false });
      await target.first().click({ timeout });
      return;
    }
    case 'fill': {
      const input = page.locator(`input[placeholder*=${JSON.stringify(arg.placeholder)}]`).first();
      await input.fill(arg.value, { timeout });
      if (arg.press) await input.press(arg.press);
      return;
    }
    case 'press':
      await page.keyboard.press(arg);
      return;
    case 'count': {
      const locator = page.locator(arg.selector);
      await locator.nth(arg.at_least - 1).waitFor({ state: 'attached', timeout });
      return;
    }
    case 'image':
      await page.waitForFunction(
        ({ width, height }) => [...document.images].some(
          (img) => img.complete && img.naturalWidth === width && img.naturalHeight === height,
        ),
        arg,
        { timeout },
      );
      return;
    case 'screenshot':
      await page.screenshot({ path: arg });
      return;
    default:
      throw new Error(`unknown step ${verb}`);
  }
}

async function visit(context, spec) {
  const started = Date.now();
  const page = await context.newPage();
  const traffic = new Traffic(page);
  const result = { name: spec.name, url: base + spec.route, failure: null };
  if (spec.local_storage) {
    // What an earlier visit left in the UI's storage (it outlives the page, as in a browser).
    await page.addInitScript((entries) => {
      for (const [key, value] of Object.entries(entries)) localStorage.setItem(key, value);
    }, spec.local_storage);
  }
  try {
    await page.goto(base + spec.route, { timeout });
    for (const [index, step] of spec.steps.entries()) {
      // The checks of absence run on a settled page, or they would pass before anything loaded.
      if (step.not_see || step.no_element) await traffic.settle(page);
      try {
        await runStep(page, step);
      } catch (error) {
        result.failure = `step ${index + 1} ${describeStep(step)}: ${error.message.split('\n')[0]}`;
        break;
      }
    }
  } catch (error) {
    result.failure = `loading ${spec.route}: ${error.message.split('\n')[0]}`;
  }
  await traffic.settle(page);
  result.screenshot = path.join(plan.screenshot_dir, `${spec.name}.png`);
  await page.screenshot({ path: result.screenshot }).catch((error) => {
    result.screenshot = `<none: ${error.message}>`;
  });
  result.final_url = page.url();
  result.bad_responses = traffic.badResponses;
  result.graphql_errors = traffic.graphqlErrors;
  result.page_errors = traffic.pageErrors;
  result.api_calls = traffic.apiCalls;
  result.ms = Date.now() - started;
  await page.close();
  log(spec.name, `${result.ms} ms`, result.failure ?? 'ok',
      `(${result.bad_responses.length} bad responses, ${result.graphql_errors.length} GraphQL errors)`);
  return result;
}

/** Signs in through ferroflow's page: what the redirect, the form and the cookie look like. */
async function signIn(context) {
  const page = await context.newPage();
  const traffic = new Traffic(page);
  const out = { failure: null };
  try {
    // Without a session the UI sends the browser to the sign-in page.
    const first = await page.goto(base, { timeout });
    out.unauthenticated_redirects = [];
    for (let request = first?.request().redirectedFrom(); request; request = request.redirectedFrom()) {
      const response = await request.response();
      out.unauthenticated_redirects.unshift({
        url: request.url(), status: response?.status() ?? null,
        location: (await response?.allHeaders())?.location ?? null,
      });
    }
    out.unauthenticated_url = page.url();
    await page.locator('#api_key').fill(plan.signin.api_key, { timeout });
    const [post] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && /\/signin$/.test(new URL(r.url()).pathname), { timeout }),
      page.locator('#signin').click({ timeout }),
    ]);
    out.post_status = post.status();
    out.post_location = (await post.allHeaders()).location ?? null;
    await page.waitForURL((url) => !url.pathname.endsWith('/signin'), { timeout });
    out.landed_url = page.url();
    for (const text of plan.signin.see ?? []) {
      await page.getByText(text, { exact: false }).first().waitFor({ timeout });
    }
  } catch (error) {
    out.failure = error.message.split('\n')[0];
  }
  await traffic.settle(page);
  await page.screenshot({ path: path.join(plan.screenshot_dir, 'signin.png') }).catch(() => {});
  out.cookies = (await context.cookies()).map(({ name, value, httpOnly, sameSite, path: p, secure }) => (
    { name, value, httpOnly, sameSite, path: p, secure }));
  out.bad_responses = traffic.badResponses;
  await page.close();
  log('signin', out.failure ?? 'ok');
  return out;
}

/** Signs out as a form on the UI's origin would (a same-origin POST), then reloads the UI. */
async function signOut(context) {
  const page = await context.newPage();
  const out = { failure: null };
  try {
    await page.goto(base, { timeout });
    // `manual`: a redirect answer reads as type "opaqueredirect" (status 0), not followed.
    out.response = await page.evaluate(async () => {
      const r = await fetch('signout', { method: 'POST', redirect: 'manual' });
      return { type: r.type, status: r.status };
    });
    out.cookies_after = (await context.cookies()).map((c) => c.name);
    await page.goto(base, { timeout });
    out.url_after = page.url();
  } catch (error) {
    out.failure = error.message.split('\n')[0];
  }
  await page.close();
  log('signout', out.failure ?? 'ok');
  return out;
}

const started = Date.now();
const browser = await chromium.launch({
  executablePath: plan.chromium,
  headless: true,
  // Root in a container: chromium's sandbox needs user namespaces we do not have.
  args: ['--no-sandbox'],
});
const results = { browser: browser.version(), pages: [], signin: null, signout: null };
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  // The MLflow Assistant panel opens by itself on a browser's first visit and covers a third
  // of every page; a person closes it once, and so do we (MLflow keeps both in localStorage).
  await context.addInitScript(() => {
    if (!localStorage.getItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1')) {
      localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
      localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
    }
  });
  if (plan.signin) results.signin = await signIn(context);
  for (const spec of plan.pages) results.pages.push(await visit(context, spec));
  if (plan.signin) results.signout = await signOut(context);
} finally {
  await browser.close();
}
results.ms = Date.now() - started;
process.stdout.write(JSON.stringify(results));
