// Panel entry: shows whether the sidecar is reachable and the token accepted.
'use strict';
const { checkConnection } = require('./client.js');

const TOKEN_KEY = 'retouch.token';
const light = document.getElementById('light');
const statusText = document.getElementById('status');
const tokenField = document.getElementById('token');

tokenField.value = localStorage.getItem(TOKEN_KEY) || '';
tokenField.addEventListener('change', () => {
  localStorage.setItem(TOKEN_KEY, tokenField.value.trim());
  refresh();
});

async function refresh() {
  const result = await checkConnection(fetch, { token: localStorage.getItem(TOKEN_KEY) || '' });
  light.className = `light ${result.state}`;
  statusText.textContent =
    result.state === 'connected' ? `Sidecar ${result.version}: connected` : result.message;
}

refresh();
setInterval(refresh, 5000);
