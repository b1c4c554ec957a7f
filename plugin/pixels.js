// Pixel buffers between Photoshop's imaging API and the adapter contract: 16-bit range
// conversion, trimmed composites put back on the canvas, and a bilinear resize that
// makes a small draft document-sized. Plain JavaScript on typed arrays (no host APIs),
// so Node tests it directly.
'use strict';

// 16-bit samples are full range (0..65535) on both sides: the imaging API's `fullRange`
// option (Photoshop 24.4) reads and writes them so, instead of its own 0..32768. A
// Uint16Array view reads and writes little-endian bytes on the platforms Photoshop runs
// on (x86-64 and arm64), which is the contract's byte order.
function samples16(bytes) {
  const aligned = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
  return new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >> 1);
}

function asBytes(samples) {
  return new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
}

/** Contract pixels → a typed array in the host's depth (full range), for createImageDataFromBuffer. */
function hostSamples(pixels, hostDepth) {
  const { bytes, width, height, channels, depth } = pixels;
  const count = width * height * channels;
  if (bytes.byteLength !== count * (depth / 8)) throw new Error('The pixel buffer does not match its size.');
  if (depth === 8 && hostDepth === 8) return bytes;
  if (depth === 16 && hostDepth === 16) return samples16(bytes);
  if (depth === 8) {
    const out = new Uint16Array(count);
    for (let i = 0; i < count; i++) out[i] = bytes[i] * 257;
    return out;
  }
  const wide = samples16(bytes);
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) out[i] = Math.round(wide[i] / 257);
  return out;
}

// getPixels trims transparent margins from the composite; the contract wants the whole
// canvas, so a trimmed read goes back into a transparent document-sized RGBA buffer.
function padToDocument(samples, { width, height, channels }, bounds, docWidth, docHeight, opaque) {
  const out = new samples.constructor(docWidth * docHeight * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const from = (y * width + x) * channels;
      const to = ((y + bounds.top) * docWidth + x + bounds.left) * 4;
      out[to] = samples[from];
      out[to + 1] = samples[from + 1];
      out[to + 2] = samples[from + 2];
      out[to + 3] = channels === 4 ? samples[from + 3] : opaque;
    }
  }
  return out;
}

function coversDocument(bounds, width, height, docWidth, docHeight) {
  return !bounds || (bounds.left === 0 && bounds.top === 0 && width === docWidth && height === docHeight);
}

// For each output coordinate: the two source coordinates either side of its centre and
// the weight of the second, in 1/256ths, clamped at the edges.
function axis(outSize, inSize) {
  const first = new Int32Array(outSize);
  const second = new Int32Array(outSize);
  const weight = new Int32Array(outSize);
  const ratio = inSize / outSize;
  for (let i = 0; i < outSize; i++) {
    const at = Math.min(Math.max((i + 0.5) * ratio - 0.5, 0), inSize - 1);
    first[i] = Math.floor(at);
    second[i] = Math.min(first[i] + 1, inSize - 1);
    weight[i] = Math.round((at - first[i]) * 256);
  }
  return { first, second, weight };
}

// One source row stretched to the output width (rounded, same range as the samples).
function stretchRow(source, start, xs, channels, into) {
  const { first, second, weight } = xs;
  let to = 0;
  for (let x = 0; x < first.length; x++) {
    const left = start + first[x] * channels;
    const right = start + second[x] * channels;
    const w = weight[x];
    for (let c = 0; c < channels; c++) {
      const a = source[left + c];
      into[to++] = (a * 256 + (source[right + c] - a) * w + 128) >> 8;
    }
  }
}

/**
 * The contract pixels resized to width × height (bilinear, pixel centres aligned, in
 * fixed point: within one level of the exact value), same depth and channels. A draft
 * placed this way is a plain full-size putPixels: no Transform or Move command, which
 * would act on the user's selection. Separable: each source row is stretched once, and
 * every output row is a blend of two stretched rows.
 */
function resizePixels(pixels, width, height) {
  if (pixels.width === width && pixels.height === height) return pixels;
  const { channels, depth } = pixels;
  const source = depth === 16 ? samples16(pixels.bytes) : pixels.bytes;
  const rowLength = width * channels;
  const out = depth === 16 ? new Uint16Array(height * rowLength) : new Uint8Array(height * rowLength);
  const xs = axis(width, pixels.width);
  const ys = axis(height, pixels.height);
  const stride = pixels.width * channels;
  const rows = [
    { index: -1, samples: new Int32Array(rowLength) },
    { index: -1, samples: new Int32Array(rowLength) },
  ];
  const stretched = (index) => {
    let row = rows.find((candidate) => candidate.index === index);
    if (!row) {
      row = rows[0].index < rows[1].index ? rows[0] : rows[1];
      stretchRow(source, index * stride, xs, channels, row.samples);
      row.index = index;
    }
    return row.samples;
  };
  for (let y = 0; y < height; y++) {
    const upper = stretched(ys.first[y]);
    const lower = stretched(ys.second[y]);
    const w = ys.weight[y];
    let to = y * rowLength;
    if (w === 0) {
      out.set(upper, to);
      continue;
    }
    for (let i = 0; i < rowLength; i++) {
      const a = upper[i];
      out[to++] = (a * 256 + (lower[i] - a) * w + 128) >> 8;
    }
  }
  return { bytes: depth === 16 ? asBytes(out) : out, width, height, channels, depth };
}

module.exports = {
  samples16,
  asBytes,
  hostSamples,
  padToDocument,
  coversDocument,
  resizePixels,
};
