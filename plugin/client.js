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
    return { state: 'offline', message: 'The sidecar is not running.' };
  }
  if (!token) return { state: 'unauthorized', version: health.version, message: 'Enter the token.' };
  // HEAD of an id that cannot exist: 404 means the token was accepted, 401 that it was not.
  let probe;
  try {
    probe = await fetchFn(`${baseUrl}/v1/images/${'0'.repeat(64)}`, {
      method: 'HEAD',
      headers: { Authorization: `Bearer ${token}` },
    });
  } catch {
    // the sidecar went away between the two requests
    return { state: 'offline', message: 'The sidecar is not running.' };
  }
  if (probe.status === 401) {
    return { state: 'unauthorized', version: health.version, message: 'The token was refused.' };
  }
  return { state: 'connected', version: health.version, health };
}

// Codes for answers that carry no error body (HEAD, or a proxy in the way).
const STATUS_CODES = { 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 409: 'conflict' };

class SidecarError extends Error {
  constructor({ status = 0, code, message, details = {} }) {
    super(message);
    this.name = 'SidecarError';
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    // no JSON body: fall back to the status
  }
  const error = body && typeof body.error === 'object' && body.error ? body.error : {};
  return new SidecarError({
    status: response.status,
    code: error.code || STATUS_CODES[response.status] || 'http_error',
    message: error.message || `sidecar answered ${response.status}`,
    details: error.details || {},
  });
}

// Built by hand, not with URL/URLSearchParams, which not every UXP version has.
function queryString(params) {
  const pairs = Object.entries(params)
    .filter(([, value]) => value !== undefined && value !== null)
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`);
  return pairs.length ? `?${pairs.join('&')}` : '';
}

function imageHeaders({ width, height, channels, depth }) {
  return {
    'X-Image-Width': String(width),
    'X-Image-Height': String(height),
    'X-Image-Channels': String(channels),
    'X-Image-Depth': String(depth),
  };
}

function imageShape(headers) {
  const number = (name) => {
    const value = headers.get(name);
    return value === null ? null : Number(value);
  };
  return {
    width: number('X-Image-Width'),
    height: number('X-Image-Height'),
    channels: number('X-Image-Channels'),
    depth: number('X-Image-Depth'),
  };
}

const id = (value) => encodeURIComponent(value);

// Every route of the sidecar's HTTP API. Methods answer the parsed JSON body and throw
// SidecarError: the sidecar's {error: {code, message, details}}, or code 'offline'.
class SidecarClient {
  // rawBody turns upload bytes into the body fetch sends best: Chromium copies a typed
  // array through its network process at ~20 MB/s but sends a Blob at once (a 48 MB
  // upload: 2.9 s against 0.25 s), so the browser panel passes bytes => new Blob([bytes]).
  constructor({ fetch: fetchFn = globalThis.fetch, baseUrl = DEFAULT_BASE_URL, token = '', rawBody = (bytes) => bytes } = {}) {
    // a browser's fetch throws "Illegal invocation" when called as a method of another object
    this.fetch = (url, init) => fetchFn(url, init);
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.token = token;
    this.rawBody = rawBody;
  }

  async request(method, path, { json, body, headers = {} } = {}) {
    const init = { method, headers: { ...headers } };
    if (this.token) init.headers.Authorization = `Bearer ${this.token}`;
    if (json !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(json);
    } else if (body !== undefined) {
      init.body = body;
    }
    let response;
    try {
      response = await this.fetch(`${this.baseUrl}${path}`, init);
    } catch (error) {
      throw new SidecarError({
        code: 'offline',
        message: `The sidecar is not reachable at ${this.baseUrl}: ${error.message}`,
        details: { cause: String(error) },
      });
    }
    if (!response.ok) throw await errorFrom(response);
    return response;
  }

  async requestJson(method, path, options) {
    const response = await this.request(method, path, options);
    return response.json();
  }

  health() {
    return this.requestJson('GET', '/v1/health');
  }

  async hasImage(imageId) {
    try {
      await this.request('HEAD', `/v1/images/${id(imageId)}`);
      return true;
    } catch (error) {
      if (error.status === 404) return false;
      throw error;
    }
  }

  uploadRaw(bytes, shape) {
    const headers = { 'Content-Type': 'application/octet-stream', ...imageHeaders(shape) };
    return this.requestJson('POST', '/v1/images', { body: this.rawBody(bytes), headers });
  }

  submit(body) {
    return this.requestJson('POST', '/v1/jobs', { json: body });
  }

  job(jobId) {
    return this.requestJson('GET', `/v1/jobs/${id(jobId)}`);
  }

  // {jobs: [...]} in queue order
  jobs() {
    return this.requestJson('GET', '/v1/jobs');
  }

  patch(jobId, priority) {
    return this.requestJson('PATCH', `/v1/jobs/${id(jobId)}`, { json: { priority } });
  }

  cancel(jobId) {
    return this.requestJson('DELETE', `/v1/jobs/${id(jobId)}`);
  }

  // The sidecar's default format is png: raw is asked for explicitly.
  async result(jobId, { format = 'raw', intensity, maxSide } = {}) {
    const query = queryString({ format, intensity, max_side: maxSide });
    const response = await this.request('GET', `/v1/jobs/${id(jobId)}/result${query}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    return { bytes, ...imageShape(response.headers), contentType: response.headers.get('Content-Type') };
  }

  // A preview the sidecar still holds: JPEG bytes, or raw 8-bit RGB pixels with format 'raw'.
  async preview(jobId, seq, { format = 'jpeg' } = {}) {
    const query = queryString({ format });
    const response = await this.request('GET', `/v1/jobs/${id(jobId)}/previews/${Number(seq)}${query}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (format !== 'raw') return { bytes, contentType: response.headers.get('Content-Type') };
    return { bytes, ...imageShape(response.headers) };
  }

  precompute({ imageId, documentId, layerStackHash, ops }) {
    const json = { image_id: imageId, document_id: documentId };
    if (layerStackHash !== undefined) json.layer_stack_hash = layerStackHash;
    if (ops !== undefined) json.ops = ops;
    return this.requestJson('POST', '/v1/precompute', { json });
  }

  stopPrecompute(documentId) {
    return this.requestJson('DELETE', `/v1/precompute/${id(documentId)}`);
  }

  recordAction(documentId, action) {
    return this.requestJson('POST', '/v1/actions', { json: { document_id: documentId, action } });
  }

  predict(after) {
    return this.requestJson('GET', `/v1/predictions${queryString({ after })}`);
  }

  // For <img src> and EventSource, which cannot send headers: the sidecar takes the
  // token as a query on GET (and keeps queries out of its log).
  previewUrl(path) {
    const url = /^[a-z]+:/i.test(path) ? path : `${this.baseUrl}/${path.replace(/^\/+/, '')}`;
    if (!this.token) return url;
    return `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(this.token)}`;
  }
}

module.exports = { DEFAULT_BASE_URL, checkConnection, SidecarClient, SidecarError };
