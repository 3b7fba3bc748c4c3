import { createRequire } from 'node:module';
const require = createRequire(new URL('../node/package.json', import.meta.url));
const { chromium } = require('playwright-core');
const [base, outdir, ...routes] = process.argv.slice(2);
const b = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
const ctx = await b.newContext({ viewport: { width: 1400, height: 900 } });
await ctx.addInitScript(() => { if (!localStorage.getItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1')) { localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1','true'); localStorage.setItem('mlflow.assistant.panelOpen_v1','false'); } });
let i = 0;
for (const r of routes) {
  const p = await ctx.newPage();
  p.on('response', async (resp) => {
    const u = resp.url();
    if (u.includes('/static-files/')) return;
    let body = '';
    try { body = (await resp.text()).slice(0, 300); } catch (e) { body = '<' + e.message + '>'; }
    if (u.endsWith('/graphql')) console.log('   GQL', (resp.request().postData()||'').slice(0, 300));
    console.log(`  ${resp.request().method()} ${u} -> ${resp.status()} ${body.replace(/\s+/g, ' ').slice(0, 200)}`);
  });
  p.on('console', (m) => { if (m.type() === 'error') console.log('  console:', m.text().slice(0, 200)); });
  p.on('pageerror', (e) => console.log('  pageerror:', e.message.slice(0, 200)));
  console.log('== ' + r);
  const t0 = Date.now();
  await p.goto(base + r);
  
  await p.waitForTimeout(3000);
  console.log('  TEXT:', (await p.innerText('body')).replace(/\s+/g,' ').slice(0, 1500));
  console.log('  took', Date.now() - t0);
  await p.screenshot({ path: `${outdir}/${i++}.png` });
  await p.close();
}
await b.close();
