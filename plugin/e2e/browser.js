// Debian's Chromium driven by playwright-core, headless, with the flags a closed network
// needs (no background connections that would be refused).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SCREENSHOTS = process.env.PANEL_SCREENSHOTS || path.join(os.tmpdir(), 'ml-retouch-screenshots');

async function launch() {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}; run scripts/setup-browser`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A page on the browser panel, with page errors collected in `errors`. */
async function openPanel(browser, sidecar, { precompute = true } = {}) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  const fragment = `#token=${sidecar.token}${precompute ? '' : '&precompute=off'}`;
  await page.goto(`${sidecar.url}/panel/${fragment}`);
  await page.waitForFunction(() => window.mlRetouch && document.querySelector('#connection-light.connected'));
  return { page, errors };
}

async function screenshot(page, name) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, name);
  await page.screenshot({ path: file });
  return file;
}

module.exports = { launch, openPanel, screenshot, SCREENSHOTS };
