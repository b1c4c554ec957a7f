// Starts a real sidecar (.venv/bin/retouch-sidecar serve) on a free loopback port with
// its own folders, for the browser-panel tests; stop() ends it and removes the folders.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const SIDECAR = path.join(ROOT, '.venv', 'bin', 'retouch-sidecar');

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitForHealth(url, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the sidecar exited with ${child.exitCode}`);
    try {
      const response = await fetch(`${url}/v1/health`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the sidecar did not answer within ${timeoutMs} ms`);
}

async function startSidecar({ engines = [] } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ml-retouch-e2e-'));
  const folders = ['--cache-dir', path.join(dir, 'cache'), '--config-dir', path.join(dir, 'config'), '--data-dir', path.join(dir, 'data')];
  const port = await freePort();
  const args = ['serve', '--port', String(port), ...folders, ...engines.flatMap((name) => ['--engine', name])];
  const logPath = path.join(dir, 'sidecar.log');
  const url = `http://127.0.0.1:${port}`;
  let child = null;

  const launch = async () => {
    const log = fs.openSync(logPath, 'a');
    child = spawn(SIDECAR, args, { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    try {
      await waitForHealth(url, child, 60000);
    } catch (error) {
      child.kill('SIGKILL');
      throw new Error(`${error.message}\n${fs.readFileSync(logPath, 'utf8')}`);
    }
  };
  const halt = async () => {
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };

  await launch();
  const token = execFileSync(SIDECAR, ['token', '--config-dir', path.join(dir, 'config')], { encoding: 'utf8' }).trim();
  const api = async (method, route, { json, body, headers = {} } = {}) => {
    const init = { method, headers: { Authorization: `Bearer ${token}`, ...headers } };
    if (json !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(json);
    } else if (body !== undefined) {
      init.body = body;
    }
    const response = await fetch(`${url}${route}`, init);
    return { status: response.status, json: response.headers.get('content-type')?.includes('json') ? await response.json() : null };
  };
  const stop = async () => {
    await halt();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  // halt() and launch() again: the same port, folders and token (a sidecar restart).
  return { url, token, api, stop, halt, launch, logPath };
}

module.exports = { startSidecar, ROOT };
