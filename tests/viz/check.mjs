// Opens a VIZ=1 page in headless chromium (puppeteer-core) and checks it: no console error or page error, every
// kernel entry given on the command line is shown in the schedule tables and has its own section with an AST,
// LLVM IR and assembly, and the filter box narrows the rows. Usage: node check.mjs PAGE.html CHROMIUM ENTRY...
import puppeteer from 'puppeteer-core';

const [page_path, chromium, ...entries] = process.argv.slice(2);
const problems = [];
const browser = await puppeteer.launch({
  executablePath: chromium, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--allow-file-access-from-files'],
});
try {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  await page.goto('file://' + page_path, { waitUntil: 'load' });
  const shown = await page.evaluate(() => {
    const rows = [...document.querySelectorAll('tr[data-k] code')].map((c) => c.textContent);
    const sections = {};
    for (const d of document.querySelectorAll('details.kernel')) {
      const entry = d.querySelector('summary').textContent.split(':')[0];
      const text = (cls) => (d.querySelector('pre.' + cls) || { textContent: '' }).textContent;
      sections[entry] = { ast: text('ast'), llvm: text('llvm'), asm: text('asm'), loopir: text('loopir') };
    }
    return { rows, sections, title: document.title };
  });
  for (const e of entries) {
    if (!shown.rows.includes(e)) problems.push(`kernel ${e} is not in the schedule tables`);
    const s = shown.sections[e];
    if (!s) { problems.push(`kernel ${e} has no section`); continue; }
    if (!s.ast.includes('kernel')) problems.push(`kernel ${e}: no AST`);
    if (!s.llvm.includes('define')) problems.push(`kernel ${e}: no LLVM IR`);
    if (s.asm.length < 40 || s.asm === '(none)') problems.push(`kernel ${e}: no assembly`);
  }
  // the filter: typing an entry leaves only its rows visible
  if (entries.length) {
    await page.type('#filter', entries[0]);
    const visible = await page.evaluate(() =>
      [...document.querySelectorAll('tr[data-k]')].filter((r) => !r.classList.contains('hidden')).length);
    const total = shown.rows.length;
    if (!(visible >= 1 && visible < total)) problems.push(`filter: ${visible} of ${total} rows visible`);
  }
  console.log(`${shown.title}: ${Object.keys(shown.sections).length} kernel sections, ${shown.rows.length} schedule rows, ` +
              `${entries.length} kernels checked`);
} finally {
  await browser.close();
}
for (const p of problems) console.log('FAIL ' + p);
process.exit(problems.length ? 1 : 0);
