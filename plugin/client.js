// Talks to the sidecar over HTTP. Plain JavaScript: no Photoshop or UXP APIs here
// (those live in photoshop-adapter.js), so it runs under Node with a fake fetch.
'use strict';

const DEFAULT_BASE_URL = 'http://127.0.0.1:7431';

// What the panel shows about the sidecar: 'connected', 'unauthorized' or 'offline'.
async function checkConnection(fetchFn, { baseUrl = DEFAULT_BASE_URL, token = '' } = {}) {
  let health;
  try {
    const response = await fetchFn(`${baseUrl}/v1/health`);
    if (!response.ok) return { state: 'offline', message: `sidecar answered ${response.status}` };
    health = await response.json();
  } catch (error) {
    return { state: 'offline', message: 'The sidecar is not running. Start it with scripts/run.' };
  }
  if (!token) return { state: 'unauthorized', version: health.version, message: 'Enter the token.' };
  // HEAD of an id that cannot exist: 404 means the token was accepted, 401 that it was not.
  const probe = await fetchFn(`${baseUrl}/v1/images/${'0'.repeat(64)}`, {
    method: 'HEAD',
    headers: { Authorization: `Bearer ${token}` },
  });
  if (probe.status === 401) {
    return { state: 'unauthorized', version: health.version, message: 'The token was refused.' };
  }
  return { state: 'connected', version: health.version, health };
}

module.exports = { DEFAULT_BASE_URL, checkConnection };
