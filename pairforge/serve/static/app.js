// pairforge serve: draw or upload an input A, see the model's output G(A).
// No framework, no build step, nothing loaded from the network but this server's own API.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  info: null,
  tool: null,
  tools: [],
  color: [0, 0, 0],
  background: [255, 255, 255],
  seed: 0,
  size: [256, 256],
  inFlight: false,
  dirty: false,
  timer: null,
  undo: [],
  drawing: null,
  outputBlob: null,
  outputUrl: null,
  version: 0,
  wanted: 0,
  outputSeed: 0,
};
let canvas;
let ctx;

// ---------- start-up ----------------------------------------------------------------------

async function start() {
  canvas = $("canvas");
  ctx = canvas.getContext("2d", { willReadFrequently: true });
  let info;
  try {
    const response = await fetch("/api/info");
    info = await response.json();
    if (!response.ok) throw new Error(info.error || response.statusText);
  } catch (err) {
    showStatus(`cannot reach the model: ${err.message}`, true);
    return;
  }
  state.info = info;
  state.size = info.size;
  showFacts(info);
  setUpTools(info);
  setUpSizes(info);
  setUpUpload(info);
  setUpOutput(info);
  bindCanvas();
  resetCanvas(info.size[1], info.size[0]);
  predictSoon(0);
}

function showFacts(info) {
  const tags = [info.kind, `${info.channels}-channel A`, `${info.size[1]}×${info.size[0]}`, info.generator, info.device]
    .filter(Boolean)
    .map((t) => `<span class="tag">${escapeHtml(String(t))}</span>`)
    .join("");
  $("run-facts").innerHTML = `<b>${escapeHtml(info.run)}</b> ${tags}`;
  document.title = `pairforge serve: ${info.run}`;
}

// ---------- tools per kind ------------------------------------------------------------------

function paletteEntries(palette) {
  if (!palette) return [];
  const entries = (palette.classes || []).map((c) => ({ name: c.name, color: c.color }));
  if (palette.ignore) entries.push({ name: `${palette.ignore.name || "ignore"} (ignore)`, color: palette.ignore.color });
  return entries;
}

function setUpTools(info) {
  const tools = $("tools");
  tools.innerHTML = "";
  const add = (id, label, options) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "tool";
    button.dataset.tool = id;
    button.innerHTML = label;
    button.addEventListener("click", () => selectTool(id));
    tools.appendChild(button);
    state.tools.push({ id, button, ...options });
  };
  if (info.kind === "edges") {
    state.background = [255, 255, 255];
    add("pen", "Pen", { color: () => [0, 0, 0], size: 2, mode: "brush" });
    add("eraser", "Eraser", { color: () => [255, 255, 255], size: 12, mode: "brush" });
  } else if (info.kind === "labels") {
    const entries = paletteEntries(info.palette);
    state.color = entries.length ? entries[0].color : [0, 0, 0];
    state.background = state.color.slice();
    add("brush", "Brush", { color: () => state.color, size: 10, mode: "brush" });
    add("fill", "Fill", { color: () => state.color, size: null, mode: "fill" });
    buildLegend(entries);
  } else if (info.kind === "gray") {
    state.background = [128, 128, 128];
    state.color = [64, 64, 64];
    add("brush", "Gray brush", { color: () => state.color, size: 12, mode: "brush" });
    add("fill", "Fill", { color: () => state.color, size: null, mode: "fill" });
    const label = document.createElement("label");
    label.className = "slider";
    label.innerHTML = `gray <input id="gray-level" type="range" min="0" max="255" value="64">
      <span id="gray-swatch" class="swatch-inline"></span><output id="gray-value">64</output>`;
    tools.appendChild(label);
    const input = label.querySelector("input");
    const update = () => {
      const v = Number(input.value);
      state.color = [v, v, v];
      $("gray-value").textContent = String(v);
      $("gray-swatch").style.background = `rgb(${v},${v},${v})`;
    };
    input.addEventListener("input", update);
    update();
  } else {
    state.background = [255, 255, 255];
    add("pen", "Pen", { color: () => state.color, size: 4, mode: "brush" });
    add("eraser", "Eraser", { color: () => [255, 255, 255], size: 14, mode: "brush" });
    const picker = document.createElement("input");
    picker.type = "color";
    picker.value = "#000000";
    picker.title = "pen colour";
    picker.addEventListener("input", () => {
      const hex = picker.value.replace("#", "");
      state.color = [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16));
    });
    tools.appendChild(picker);
  }
  $("brush-size").addEventListener("input", () => {
    const tool = currentTool();
    if (tool && tool.size !== null) tool.size = Number($("brush-size").value);
    $("brush-size-value").textContent = $("brush-size").value;
  });
  selectTool(state.tools[0].id);
}

function buildLegend(entries) {
  const legend = $("legend");
  legend.hidden = false;
  legend.innerHTML = "";
  entries.forEach((entry, index) => {
    const button = document.createElement("button");
    button.type = "button";
    button.title = `${entry.name}: rgb(${entry.color.join(", ")})`;
    button.setAttribute("aria-pressed", index === 0 ? "true" : "false");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${entry.color.join(",")})`;
    button.append(swatch, entry.name);
    button.addEventListener("click", () => {
      state.color = entry.color.slice();
      legend.querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", "false"));
      button.setAttribute("aria-pressed", "true");
    });
    legend.appendChild(button);
  });
}

function currentTool() {
  return state.tools.find((t) => t.id === state.tool);
}

function selectTool(id) {
  state.tool = id;
  for (const tool of state.tools) tool.button.setAttribute("aria-pressed", tool.id === id ? "true" : "false");
  const tool = currentTool();
  const slider = $("brush-size");
  slider.disabled = tool.size === null;
  if (tool.size !== null) {
    slider.value = String(tool.size);
    $("brush-size-value").textContent = String(tool.size);
  }
}

// ---------- canvas ---------------------------------------------------------------------------

function setUpSizes(info) {
  const select = $("canvas-size");
  const [h, w] = info.size;
  select.innerHTML = "";
  for (const factor of [1, 2]) {
    const option = document.createElement("option");
    option.value = `${w * factor}x${h * factor}`;
    option.textContent = `${w * factor}×${h * factor}${factor === 1 ? " (run)" : ""}`;
    select.appendChild(option);
  }
  select.addEventListener("change", () => {
    const [width, height] = select.value.split("x").map(Number);
    pushUndo();
    resetCanvas(width, height);
    predictSoon(0);
  });
}

function resetCanvas(width, height, bitmap) {
  canvas.width = width;
  canvas.height = height;
  const [r, g, b] = state.background;
  ctx.fillStyle = `rgb(${r},${g},${b})`;
  ctx.fillRect(0, 0, width, height);
  if (bitmap) ctx.drawImage(bitmap, 0, 0);
  fitView(canvas, width, height);
  $("input-size").textContent = `${width}×${height}`;
  const select = $("canvas-size");
  const value = `${width}x${height}`;
  if (![...select.options].some((o) => o.value === value)) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = `${width}×${height} (upload)`;
    select.appendChild(option);
  }
  select.value = value;
}

function fitView(element, width, height) {
  const view = $("canvas").parentElement.clientWidth || 384;
  const scale = Math.min(view / width, view / height);
  element.style.width = `${Math.round(width * scale)}px`;
  element.style.height = `${Math.round(height * scale)}px`;
}

function canvasPoint(event) {
  const rect = canvas.getBoundingClientRect();
  return [
    ((event.clientX - rect.left) * canvas.width) / rect.width,
    ((event.clientY - rect.top) * canvas.height) / rect.height,
  ];
}

function bindCanvas() {
  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    const tool = currentTool();
    pushUndo();
    const image = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const [x, y] = canvasPoint(event);
    if (tool.mode === "fill") {
      floodFill(image, Math.floor(x), Math.floor(y), tool.color());
      ctx.putImageData(image, 0, 0);
      predictSoon(0);
      return;
    }
    state.drawing = { image, last: [x, y], color: tool.color(), size: tool.size };
    stamp(image, x, y, state.drawing.size, state.drawing.color);
    ctx.putImageData(image, 0, 0);
    predictSoon();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!state.drawing) return;
    const [x, y] = canvasPoint(event);
    const d = state.drawing;
    line(d.image, d.last, [x, y], d.size, d.color);
    d.last = [x, y];
    ctx.putImageData(d.image, 0, 0);
    predictSoon();
  });
  const end = () => {
    if (!state.drawing) return;
    state.drawing = null;
    predictSoon(0);
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("undo").addEventListener("click", undo);
  $("clear").addEventListener("click", () => {
    pushUndo();
    resetCanvas(canvas.width, canvas.height);
    predictSoon(0);
  });
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "z") {
      event.preventDefault();
      undo();
    }
  });
}

// Pixel-exact painting (no anti-aliasing): label maps must keep exact palette colours.
function stamp(image, cx, cy, size, color) {
  const { width, height, data } = image;
  const radius = size / 2;
  const x0 = Math.max(0, Math.floor(cx - radius));
  const x1 = Math.min(width - 1, Math.ceil(cx + radius));
  const y0 = Math.max(0, Math.floor(cy - radius));
  const y1 = Math.min(height - 1, Math.ceil(cy + radius));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      if (dx * dx + dy * dy <= radius * radius || (x === Math.floor(cx) && y === Math.floor(cy))) {
        const i = (y * width + x) * 4;
        data[i] = color[0];
        data[i + 1] = color[1];
        data[i + 2] = color[2];
        data[i + 3] = 255;
      }
    }
  }
}

function line(image, from, to, size, color) {
  const dx = to[0] - from[0];
  const dy = to[1] - from[1];
  const steps = Math.max(1, Math.ceil(Math.hypot(dx, dy) / Math.max(0.5, size / 4)));
  for (let i = 1; i <= steps; i++) stamp(image, from[0] + (dx * i) / steps, from[1] + (dy * i) / steps, size, color);
}

function floodFill(image, x, y, color) {
  const { width, height, data } = image;
  if (x < 0 || y < 0 || x >= width || y >= height) return;
  const start = (y * width + x) * 4;
  const target = [data[start], data[start + 1], data[start + 2]];
  if (target[0] === color[0] && target[1] === color[1] && target[2] === color[2]) return;
  const stack = [y * width + x];
  const same = (p) => data[p * 4] === target[0] && data[p * 4 + 1] === target[1] && data[p * 4 + 2] === target[2];
  while (stack.length) {
    const p = stack.pop();
    if (!same(p)) continue;
    data[p * 4] = color[0];
    data[p * 4 + 1] = color[1];
    data[p * 4 + 2] = color[2];
    data[p * 4 + 3] = 255;
    const px = p % width;
    if (px > 0) stack.push(p - 1);
    if (px < width - 1) stack.push(p + 1);
    if (p >= width) stack.push(p - width);
    if (p < width * (height - 1)) stack.push(p + width);
  }
}

function pushUndo() {
  state.undo.push(ctx.getImageData(0, 0, canvas.width, canvas.height));
  if (state.undo.length > 30) state.undo.shift();
}

function undo() {
  const image = state.undo.pop();
  if (!image) return;
  if (image.width !== canvas.width || image.height !== canvas.height) resetCanvas(image.width, image.height);
  ctx.putImageData(image, 0, 0);
  predictSoon(0);
}

// ---------- prediction -----------------------------------------------------------------------

// Every change asks for a prediction; the output records which request it answers
// (output.dataset.answered == document.body.dataset.wanted: the output shows the current input).
function predictSoon(delay = 200) {
  document.body.dataset.wanted = String(++state.wanted);
  clearTimeout(state.timer);
  state.timer = setTimeout(predict, delay);
}

function canvasBlob() {
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("the canvas could not be encoded"))), "image/png"));
}

async function predict() {
  if (state.inFlight) {
    state.dirty = true;
    return;
  }
  state.inFlight = true;
  state.dirty = false;
  $("busy").hidden = false;
  const started = performance.now();
  const wanted = state.wanted;
  const seed = state.seed;
  try {
    const form = new FormData();
    form.append("image", await canvasBlob(), "input.png");
    form.append("seed", String(seed));
    const response = await fetch("/api/predict", { method: "POST", body: form });
    if (!response.ok) throw new Error(await errorMessage(response));
    const blob = await response.blob();
    await showOutput(blob, seed, wanted);
    $("latency").textContent = `${Math.round(performance.now() - started)} ms`;
    showStatus("");
  } catch (err) {
    showStatus(err.message, true);
  } finally {
    state.inFlight = false;
    $("busy").hidden = true;
    if (state.dirty) predict();
  }
}

async function showOutput(blob, seed, wanted) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const output = $("output");
  if (state.outputUrl) URL.revokeObjectURL(state.outputUrl);
  state.outputBlob = blob;
  state.outputUrl = URL.createObjectURL(blob);
  await new Promise((resolve) => {
    output.onload = resolve;
    output.onerror = resolve;
    output.src = state.outputUrl;
  });
  fitView(output, output.naturalWidth, output.naturalHeight);
  output.dataset.checksum = checksum(bytes);
  output.dataset.version = String(++state.version);
  output.dataset.seed = String(seed);
  output.dataset.answered = String(wanted);
  state.outputSeed = seed;
  $("seed").textContent = state.info.dropout ? `seed ${seed}` : "";
}

function checksum(bytes) {
  let hash = 0x811c9dc5; // FNV-1a, to let tests see that the output changed
  for (let i = 0; i < bytes.length; i++) {
    hash ^= bytes[i];
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16);
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body.error || `${response.status} ${response.statusText}`;
  } catch (err) {
    return `${response.status} ${response.statusText}`;
  }
}

function setUpOutput(info) {
  const sample = $("sample");
  if (info.dropout) {
    sample.addEventListener("click", () => {
      state.seed = Math.floor(Math.random() * 2147483647);
      predictSoon(0);
    });
    $("about-output").textContent = "Test-time dropout is on (the paper's noise): Sample again draws another output. " +
      "Seed 0 is pairforge predict's default.";
  } else {
    sample.disabled = true;
    $("about-output").textContent = "Dropout is off (--dropout off): outputs are deterministic.";
  }
  $("download-output").addEventListener("click", () => {
    if (state.outputBlob) download(state.outputBlob, `${fileStem()}-output-seed${state.outputSeed}.png`);
  });
  $("download-input").addEventListener("click", async () => download(await canvasBlob(), `${fileStem()}-input.png`));
}

// ---------- upload ---------------------------------------------------------------------------

function setUpUpload(info) {
  const mode = $("upload-mode");
  mode.innerHTML = "";
  if (info.from_photos) {
    mode.add(new Option(`photo → A (${info.recipe || "the run's recipe"})`, "photo"));
  }
  mode.add(new Option("A image, as is", "a"));
  $("upload-note").textContent = info.from_photos
    ? `A photo becomes A with the run's own dataset recipe, as predict --from-photos. The model expects ${info.expects}.`
    : `The model expects ${info.expects}. ${info.from_photos_note || ""}`;
  $("file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    event.target.value = "";
    if (file) await upload(file, mode.value === "photo");
  });
}

async function upload(file, fromPhoto) {
  showStatus(fromPhoto ? "building A from the photo…" : "reading the A image…");
  $("busy").hidden = false;
  try {
    const form = new FormData();
    form.append("image", file, file.name);
    form.append("from_photo", fromPhoto ? "1" : "0");
    const response = await fetch("/api/prepare", { method: "POST", body: form });
    if (!response.ok) throw new Error(await errorMessage(response));
    const bitmap = await createImageBitmap(await response.blob(), {
      colorSpaceConversion: "none",
      premultiplyAlpha: "none",
    });
    pushUndo();
    resetCanvas(bitmap.width, bitmap.height, bitmap);
    showStatus("");
    predictSoon(0);
  } catch (err) {
    showStatus(`${file.name}: ${err.message}`, true);
  } finally {
    $("busy").hidden = true;
  }
}

// ---------- helpers --------------------------------------------------------------------------

function download(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.appendChild(link);
  link.click();
  setTimeout(() => {
    URL.revokeObjectURL(link.href);
    link.remove();
  }, 1000);
}

function fileStem() {
  return (state.info ? state.info.run : "pairforge").replace(/[^A-Za-z0-9_-]+/g, "_");
}

function showStatus(message, error = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", error);
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

document.addEventListener("DOMContentLoaded", start);
