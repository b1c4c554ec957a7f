// Links the CommonJS modules of plugin/ in a browser. /panel/modules.js wraps each
// module in define(name, factory); require() runs a factory once, on first use, with
// names resolved against the requiring module's folder. No string is ever evaluated.
'use strict';
(function () {
  const factories = new Map();
  const cache = new Map();

  function resolve(from, request) {
    if (!request.startsWith('.')) return request;
    const parts = from.split('/').slice(0, -1);
    for (const part of request.split('/')) {
      if (part === '..') parts.pop();
      else if (part !== '.') parts.push(part);
    }
    return parts.join('/');
  }

  function load(name) {
    if (cache.has(name)) return cache.get(name).exports;
    const factory = factories.get(name);
    if (!factory) throw new Error(`no module named ${name}`);
    const module = { exports: {} };
    cache.set(name, module);
    factory((request) => load(resolve(name, request)), module, module.exports);
    return module.exports;
  }

  window.define = (name, factory) => factories.set(name, factory);
  window.require = (name) => load(name);
})();
