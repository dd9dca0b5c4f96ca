// reelgate studio: a client of reelgate's public API, in plain JavaScript.
//
// Everything goes through the same authenticated endpoints as any app:
//   GET  /reelgate/v1/models                  models and their engines' capabilities
//   POST /luma/generations                    new videos (prompt enhancement, start/end frames)
//   POST /luma/generations/file_upload        an image file from disk -> a URL for image_url
//   POST /dream-machine/v1/generations        extends: forward, backward, interpolate
//   GET  /dream-machine/v1/generations        the gallery, newest first
//   DELETE /dream-machine/v1/generations/{id}
//   GET  /luma/generations/{id}               the last frame of a video
//   POST /luma/tasks {action: retrieve_batch} progress of the running ones (polled, backing off)
//
// The token lives in localStorage (this origin only) and is sent only as an
// Authorization header. User text is always set with textContent, never as HTML.

const base = document.body.dataset.base || "";
const TOKEN_KEY = "reelgate.studio.token";
const PAGE_SIZE = 12;
const POLL_FIRST_MS = 500;
const POLL_MAX_MS = 4000;

const INPUT = {
  start: "start images",
  end: "end images",
  extend: "extending a generation",
  reverse: "leading into a generation (reverse extend)",
  interpolate: "joining two generations (interpolation)",
  loop: "loops",
};
const DIRECTION_INPUT = {
  forward: INPUT.extend,
  backward: INPUT.reverse,
  interpolate: INPUT.interpolate,
};
const RUNNING = new Set(["queued", "dreaming"]);
const STATE_LABEL = {
  queued: "Queued",
  dreaming: "Rendering",
  completed: "Completed",
  failed: "Failed",
};

const $ = (selector, root = document) => root.querySelector(selector);

const el = {
  account: $("#account"),
  forget: $("#forget-token"),
  signin: $("#signin"),
  signinForm: $("#signin-form"),
  token: $("#token"),
  signinError: $("#signin-error"),
  studio: $("#studio"),
  form: $("#create-form"),
  modeInputs: [...document.querySelectorAll('input[name="mode"]')],
  extendFields: $("#extend-fields"),
  direction: $("#extend-direction"),
  source: $("#extend-source"),
  second: $("#extend-second"),
  secondField: $("#extend-second-field"),
  prompt: $("#prompt"),
  model: $("#model"),
  modelHelp: $("#model-help"),
  aspectRatio: $("#aspect-ratio"),
  resolution: $("#resolution"),
  duration: $("#duration"),
  loop: $("#loop"),
  enhance: $("#enhance"),
  enhanceHelp: $("#enhance-help"),
  createError: $("#create-error"),
  createStatus: $("#create-status"),
  createStatusText: $("#create-status .status-text"),
  showNew: $("#show-new"),
  generate: $("#generate"),
  refresh: $("#refresh"),
  galleryStatus: $("#gallery-status"),
  list: $("#gallery-list"),
  newer: $("#newer"),
  older: $("#older"),
  pageLabel: $("#page-label"),
  announcer: $("#announcer"),
  cardTemplate: $("#card-template"),
};

const state = {
  token: null,
  models: [],
  defaultModel: null,
  offset: 0,
  hasMore: false,
  generations: new Map(), // id -> official Generation object, of the page shown
  tracked: new Set(), // ids of generations still running
  pollTimer: null,
  pollDelay: POLL_FIRST_MS,
  uploads: new WeakMap(), // File -> its uploaded URL
  lastCreated: null,
};

// The API

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function serverMessage(data, response) {
  // official {detail}, AceData {error: {message}}, generations {code, message}
  if (data && typeof data === "object") {
    if (typeof data.detail === "string") return data.detail;
    if (data.error && typeof data.error.message === "string") return data.error.message;
    if (typeof data.message === "string" && data.message) return data.message;
  }
  return `the server answered ${response.status} ${response.statusText}`.trim();
}

async function api(method, path, body, { token = state.token } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(base + path, init);
  } catch {
    throw new ApiError(0, "The server could not be reached. Is reelgate still running?");
  }
  const text = response.status === 204 ? "" : await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, serverMessage(data, response));
    if (response.status === 401 && token && token === state.token) signedOut(error.message);
    throw error;
  }
  return data;
}

// Small DOM helpers (text only)

function show(node, visible = true) {
  node.hidden = !visible;
}

function say(node, text) {
  node.textContent = text || "";
  show(node, Boolean(text));
}

function setStatus(text, createdId = null) {
  el.createStatusText.textContent = text || "";
  show(el.createStatus, Boolean(text));
  state.lastCreated = createdId;
  show(el.showNew, Boolean(createdId));
}

function announce(text) {
  el.announcer.textContent = "";
  // a fresh text node each time, so the same words are announced again
  window.setTimeout(() => {
    el.announcer.textContent = text;
  }, 50);
}

function shortId(id) {
  return id.slice(0, 8);
}

// Signing in and out

function storedToken() {
  try {
    return window.localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function storeToken(token) {
  try {
    if (token) window.localStorage.setItem(TOKEN_KEY, token);
    else window.localStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: the token lasts as long as the page
  }
}

function rejectedMessage(serverSaid, stored) {
  const what = stored
    ? "Your saved API token is no longer accepted"
    : "That API token was not accepted";
  return `${what}: it is wrong or has been revoked (the server said: “${serverSaid}”). Paste a valid token, or make one with reelgate tokens create NAME.`;
}

function showSignin(message) {
  stopPolling();
  state.token = null;
  state.generations.clear();
  state.tracked.clear();
  el.list.replaceChildren();
  show(el.studio, false);
  show(el.account, false);
  show(el.signin, true);
  say(el.signinError, message);
  el.token.value = "";
  el.token.focus();
}

function signedOut(serverSaid) {
  storeToken(null);
  showSignin(rejectedMessage(serverSaid, true));
}

async function signIn(candidate, { stored = false } = {}) {
  let models;
  try {
    models = await api("GET", "/reelgate/v1/models", undefined, { token: candidate });
  } catch (error) {
    if (error.status === 401) {
      if (stored) storeToken(null);
      showSignin(rejectedMessage(error.message, stored));
    } else {
      showSignin(`Could not sign in: ${error.message}`);
    }
    return;
  }
  state.token = candidate;
  storeToken(candidate);
  state.models = models.models.filter(
    (m) => m.kind === "video" && m.generation_types.includes("video"),
  );
  state.defaultModel = models.default_model;
  show(el.signin, false);
  say(el.signinError, "");
  show(el.account, true);
  show(el.studio, true);
  fillModels();
  applyChoices();
  if (!stored) el.prompt.focus();
  await loadGallery(0);
}

el.signinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const candidate = el.token.value.trim();
  if (!candidate) {
    say(el.signinError, "Paste your API token first.");
    el.token.focus();
    return;
  }
  el.token.value = "";
  signIn(candidate);
});

el.forget.addEventListener("click", () => {
  storeToken(null);
  showSignin("");
  announce("Token forgotten. This browser no longer keeps it.");
});

// The form: what the chosen model's engine can do

function currentModel() {
  return state.models.find((m) => m.model === el.model.value) || null;
}

function currentMode() {
  return el.modeInputs.find((input) => input.checked)?.value || "new";
}

function fillModels() {
  const options = state.models.map((m) => {
    const option = document.createElement("option");
    option.value = m.model;
    option.textContent = `${m.model} (${m.engine} engine)`;
    return option;
  });
  el.model.replaceChildren(...options);
  if (state.defaultModel && state.models.some((m) => m.model === state.defaultModel)) {
    el.model.value = state.defaultModel;
  }
  if (!state.models.length) {
    say(el.createError, "This server offers no video model: enable an engine to make videos.");
  }
  el.generate.disabled = !state.models.length;
}

function limitChoices(select, allowed, preferred) {
  for (const option of select.options) {
    option.disabled = !allowed.includes(option.value);
  }
  const current = select.selectedOptions[0];
  if (!current || current.disabled) {
    select.value = allowed.includes(preferred) ? preferred : allowed[0] || "";
  }
}

function setFrame(fieldset, enabled, note) {
  fieldset.disabled = !enabled;
  say($(".frame-note", fieldset), enabled ? "" : note);
}

function applyChoices() {
  const model = currentModel();
  if (!model) return;
  const has = (input) => model.inputs.includes(input);
  const defaults = el.form.dataset;
  limitChoices(el.aspectRatio, model.aspect_ratios, defaults.defaultAspectRatio);
  limitChoices(el.resolution, model.resolutions, defaults.defaultResolution);
  limitChoices(el.duration, model.durations, defaults.defaultDuration);

  const extendable = Object.values(DIRECTION_INPUT).some(has);
  const extendRadio = el.modeInputs.find((input) => input.value === "extend");
  extendRadio.disabled = !extendable;
  if (!extendable && extendRadio.checked) {
    el.modeInputs.find((input) => input.value === "new").checked = true;
  }
  const extending = currentMode() === "extend";
  show(el.extendFields, extending);
  for (const option of el.direction.options) {
    option.disabled = !has(DIRECTION_INPUT[option.value]);
  }
  if (el.direction.selectedOptions[0]?.disabled) {
    const first = [...el.direction.options].find((option) => !option.disabled);
    if (first) el.direction.value = first.value;
  }
  const direction = el.direction.value;
  show(el.secondField, extending && direction === "interpolate");

  // an extend's size and aspect ratio are those of the video it continues
  el.aspectRatio.disabled = extending;
  el.resolution.disabled = extending;

  const engine = `The ${model.engine} engine`;
  if (!has(INPUT.start)) setFrame($("#start-frame"), false, `${engine} does not take start frames.`);
  else if (extending && direction !== "backward")
    setFrame($("#start-frame"), false, "The generation being extended is the start.");
  else setFrame($("#start-frame"), true);
  if (!has(INPUT.end)) setFrame($("#end-frame"), false, `${engine} does not take end frames.`);
  else if (extending && direction !== "forward")
    setFrame($("#end-frame"), false, "The generation being led into is the end.");
  else setFrame($("#end-frame"), true);

  el.loop.disabled = !has(INPUT.loop);
  el.enhance.disabled = extending;
  el.enhanceHelp.textContent = extending
    ? "Not available for extends: they use the official API, which has no prompt enhancement."
    : "Adds camera, light and lens details to the prompt.";

  const lacks = [];
  if (!extendable) lacks.push("extending");
  if (!has(INPUT.start)) lacks.push("start frames");
  if (!has(INPUT.end)) lacks.push("end frames");
  if (!has(INPUT.loop)) lacks.push("loops");
  const sizes = `${model.resolutions.join(", ")}; ${model.durations.join(", ")}`;
  el.modelHelp.textContent =
    `${model.model} is served by the ${model.engine} engine (${sizes}).` +
    (lacks.length ? ` It does not offer ${lacks.join(", ")}.` : "") +
    (extending ? " Size and aspect ratio follow the video being extended." : "");
}

for (const node of [el.model, el.direction, ...el.modeInputs]) {
  node.addEventListener("change", () => {
    applyChoices();
    say(el.createError, "");
  });
}

// Start and end frames: a file from disk (uploaded) or a URL

function frameParts(which) {
  const fieldset = $(`#${which}-frame`);
  return {
    fieldset,
    file: $(`#${which}-file`),
    url: $(`#${which}-url`),
    preview: $(".frame-preview", fieldset),
    image: $(".frame-preview img", fieldset),
  };
}

function previewFrame(which, src) {
  const parts = frameParts(which);
  if (parts.image.src.startsWith("blob:")) URL.revokeObjectURL(parts.image.src);
  if (src) parts.image.src = src;
  else parts.image.removeAttribute("src");
  show(parts.preview, Boolean(src));
}

for (const which of ["start", "end"]) {
  const parts = frameParts(which);
  parts.file.addEventListener("change", () => {
    const file = parts.file.files[0];
    if (file) parts.url.value = "";
    previewFrame(which, file ? URL.createObjectURL(file) : null);
  });
  parts.url.addEventListener("input", () => {
    if (parts.url.value) parts.file.value = "";
    previewFrame(which, null);
  });
  $(".frame-clear", parts.fieldset).addEventListener("click", () => {
    parts.file.value = "";
    parts.url.value = "";
    previewFrame(which, null);
    parts.file.focus();
  });
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new ApiError(0, `Could not read ${file.name}.`));
    reader.readAsDataURL(file);
  });
}

async function frameUrl(which) {
  const parts = frameParts(which);
  if (parts.fieldset.disabled) return null;
  const file = parts.file.files[0];
  if (file) {
    if (!state.uploads.has(file)) {
      setStatus(`Uploading ${file.name}…`);
      const answer = await api("POST", "/luma/generations/file_upload", {
        file: await readAsDataUrl(file),
      });
      state.uploads.set(file, answer.public_url);
    }
    return state.uploads.get(file);
  }
  return parts.url.value.trim() || null;
}

// Creating

function extendKeyframes() {
  const direction = el.direction.value;
  const source = el.source.value;
  if (!source) throw new ApiError(0, "Choose the generation to extend (a completed video).");
  const keyframes = {};
  if (direction === "forward") keyframes.frame0 = { type: "generation", id: source };
  if (direction === "backward") keyframes.frame1 = { type: "generation", id: source };
  if (direction === "interpolate") {
    if (!el.second.value) throw new ApiError(0, "Choose the second generation to join.");
    keyframes.frame0 = { type: "generation", id: source };
    keyframes.frame1 = { type: "generation", id: el.second.value };
  }
  return keyframes;
}

async function create() {
  const prompt = el.prompt.value.trim();
  const model = el.model.value;
  const start = await frameUrl("start");
  const end = await frameUrl("end");
  if (currentMode() === "extend") {
    const keyframes = extendKeyframes();
    if (start) keyframes.frame0 = { type: "image", url: start };
    if (end) keyframes.frame1 = { type: "image", url: end };
    const body = { model, keyframes, duration: el.duration.value };
    if (prompt) body.prompt = prompt;
    if (el.loop.checked && !el.loop.disabled) body.loop = true;
    return api("POST", "/dream-machine/v1/generations", body);
  }
  const body = {
    user_prompt: prompt || null,
    expand_prompt: el.enhance.checked,
    image_url: start,
    image_end_url: end,
    loop: el.loop.checked && !el.loop.disabled,
    aspect_ratio: el.aspectRatio.value,
    model,
    resolution: el.resolution.value,
    duration: el.duration.value,
  };
  return api("POST", "/luma/generations", body);
}

el.form.addEventListener("submit", async (event) => {
  event.preventDefault();
  say(el.createError, "");
  setStatus("Sending…");
  el.generate.disabled = true;
  el.form.setAttribute("aria-busy", "true");
  try {
    const created = await create();
    setStatus(`Started generation ${shortId(created.id)}.`, created.id);
    announce("Generation started.");
    state.tracked.add(created.id);
    await loadGallery(0);
    startPolling(true);
  } catch (error) {
    setStatus("");
    if (error.status === 401) return; // signed out, with the reason
    say(el.createError, error.message);
  } finally {
    el.generate.disabled = !state.models.length;
    el.form.removeAttribute("aria-busy");
  }
});

// The gallery

function videoChoices() {
  return [...state.generations.values()].filter((g) => g.state === "completed" && g.assets?.video);
}

function promptOf(generation) {
  const request = generation.request || {};
  return request.prompt ?? request.user_prompt ?? "";
}

function describeChoice(generation) {
  const prompt = promptOf(generation);
  const words = prompt.length > 40 ? `${prompt.slice(0, 40)}…` : prompt || "no prompt";
  return `${words} (${shortId(generation.id)})`;
}

function fillSourceSelect(select, chosen) {
  const choices = videoChoices();
  const options = choices.map((g) => {
    const option = document.createElement("option");
    option.value = g.id;
    option.textContent = describeChoice(g);
    return option;
  });
  if (!options.length) {
    const none = document.createElement("option");
    none.value = "";
    none.textContent = "No completed video on this gallery page";
    options.push(none);
  }
  select.replaceChildren(...options);
  if (chosen && choices.some((g) => g.id === chosen)) select.value = chosen;
}

function refreshExtendChoices() {
  fillSourceSelect(el.source, el.source.value);
  fillSourceSelect(el.second, el.second.value);
}

function settingsOf(generation) {
  const request = generation.request || {};
  const rows = [];
  const keyframes = request.keyframes || {};
  const from = keyframes.frame0?.type === "generation" ? keyframes.frame0.id : null;
  const into = keyframes.frame1?.type === "generation" ? keyframes.frame1.id : null;
  let type = generation.generation_type === "video" ? "Video" : generation.generation_type;
  if (from && into) type = `Join of ${shortId(from)} and ${shortId(into)}`;
  else if (from) type = `Extend of ${shortId(from)}`;
  else if (into) type = `Lead into ${shortId(into)}`;
  else if (request.image_url || request.image_end_url || keyframes.frame0 || keyframes.frame1) {
    type = `${type} from frames`;
  }
  rows.push(["Type", type]);
  rows.push(["Model", generation.model || request.model || "default"]);
  if (request.aspect_ratio) rows.push(["Aspect ratio", request.aspect_ratio]);
  if (request.resolution) rows.push(["Resolution", request.resolution]);
  if (request.duration) rows.push(["Duration", request.duration]);
  if (request.loop) rows.push(["Loop", "yes"]);
  if (request.expand_prompt) rows.push(["Enhanced prompt", "yes"]);
  const created = new Date(generation.created_at);
  if (!Number.isNaN(created.getTime())) rows.push(["Created", created.toLocaleString()]);
  return rows;
}

function fileName(url, fallback) {
  try {
    const last = new URL(url, window.location.href).pathname.split("/").pop();
    return last || fallback;
  } catch {
    return fallback;
  }
}

function renderMedia(container, generation) {
  const prompt = promptOf(generation);
  const label = prompt ? `“${prompt.slice(0, 80)}”` : `generation ${shortId(generation.id)}`;
  const { video, image } = generation.assets || {};
  if (generation.state === "completed" && video) {
    const player = document.createElement("video");
    player.controls = true;
    player.preload = "metadata";
    player.playsInline = true;
    player.loop = Boolean(generation.request?.loop);
    if (image) player.poster = image;
    player.src = video;
    player.setAttribute("aria-label", `Video of ${label}`);
    container.append(player);
  } else if (generation.state === "completed" && image) {
    const picture = document.createElement("img");
    picture.src = image;
    picture.alt = `Image of ${label}`;
    picture.loading = "lazy";
    container.append(picture);
  } else {
    const placeholder = document.createElement("div");
    placeholder.className = `placeholder placeholder-${generation.state}`;
    placeholder.textContent = generation.state === "failed" ? "No video" : "Rendering…";
    container.append(placeholder);
  }
}

function renderCard(generation) {
  const card = el.cardTemplate.content.firstElementChild.cloneNode(true);
  card.dataset.generationId = generation.id;
  card.dataset.state = generation.state;
  renderMedia($(".card-media", card), generation);

  const badge = $(".badge", card);
  badge.textContent = STATE_LABEL[generation.state] || generation.state;
  badge.dataset.state = generation.state;
  const progress = $(".progress", card);
  progress.setAttribute("aria-label", `Progress of generation ${shortId(generation.id)}`);
  show(progress, RUNNING.has(generation.state));
  if (RUNNING.has(generation.state)) $(".progress-text", card).textContent = "0%";
  if (generation.state === "failed") {
    say($(".failure", card), `Failed: ${generation.failure_reason || "no reason given"}`);
  }

  const prompt = promptOf(generation);
  const promptNode = $(".prompt", card);
  promptNode.textContent = prompt || "(no prompt)";
  promptNode.classList.toggle("prompt-empty", !prompt);

  const settings = $(".settings", card);
  for (const [name, value] of settingsOf(generation)) {
    const term = document.createElement("dt");
    term.textContent = name;
    const detail = document.createElement("dd");
    detail.textContent = value;
    settings.append(term, detail);
  }
  $(".card-id code", card).textContent = generation.id;

  const { video, image } = generation.assets || {};
  const done = generation.state === "completed";
  const download = $(".download", card);
  const file = done ? video || image : null;
  if (file) {
    download.href = file;
    download.download = fileName(file, `${generation.id}.mp4`);
    download.setAttribute("aria-label", `Download generation ${shortId(generation.id)}`);
    show(download);
  }
  const extend = $(".extend", card);
  const lastFrame = $(".last-frame", card);
  show(extend, done && Boolean(video));
  show(lastFrame, done && Boolean(video));
  extend.addEventListener("click", () => extendFrom(generation.id));
  lastFrame.addEventListener("click", () => useLastFrame(generation.id, lastFrame));

  const remove = $(".delete", card);
  const confirm = $(".confirm", card);
  remove.addEventListener("click", () => {
    show(confirm, true);
    remove.setAttribute("aria-expanded", "true");
    $(".confirm-keep", card).focus();
  });
  $(".confirm-keep", card).addEventListener("click", () => {
    show(confirm, false);
    remove.setAttribute("aria-expanded", "false");
    remove.focus();
  });
  $(".confirm-delete", card).addEventListener("click", () => deleteGeneration(generation.id, card));
  return card;
}

function cardOf(id) {
  return el.list.querySelector(`[data-generation-id="${CSS.escape(id)}"]`);
}

function updateProgress(id, fraction) {
  const card = cardOf(id);
  if (!card) return;
  const percent = Math.round((fraction || 0) * 100);
  const progress = $(".progress", card);
  progress.value = percent;
  show(progress, true);
  $(".progress-text", card).textContent = `${percent}%`;
  if (percent > 0 && card.dataset.state === "queued") {
    card.dataset.state = "dreaming";
    const badge = $(".badge", card);
    badge.textContent = STATE_LABEL.dreaming;
    badge.dataset.state = "dreaming";
  }
}

function replaceCard(generation) {
  state.generations.set(generation.id, generation);
  const old = cardOf(generation.id);
  if (!old) return;
  const hadFocus = old.contains(document.activeElement);
  const card = renderCard(generation);
  old.replaceWith(card);
  if (hadFocus) $(".card-actions button:not([hidden])", card)?.focus();
  refreshExtendChoices();
}

function setGalleryStatus(text, isError = false) {
  say(el.galleryStatus, text);
  el.galleryStatus.classList.toggle("notice-error", isError);
}

async function loadGallery(offset = state.offset) {
  if (!state.token) return;
  el.refresh.disabled = true;
  let page;
  try {
    page = await api("GET", `/dream-machine/v1/generations?limit=${PAGE_SIZE}&offset=${offset}`);
  } catch (error) {
    if (error.status !== 401) {
      setGalleryStatus(
        `Could not load your generations: ${error.message}. Press Refresh to try again.`,
        true,
      );
    }
    return;
  } finally {
    el.refresh.disabled = false;
  }
  if (!page.generations.length && offset > 0) {
    await loadGallery(Math.max(0, offset - PAGE_SIZE));
    return;
  }
  state.offset = offset;
  state.hasMore = page.has_more;
  state.generations = new Map(page.generations.map((g) => [g.id, g]));
  el.list.replaceChildren(...page.generations.map(renderCard));
  for (const g of page.generations) {
    if (RUNNING.has(g.state)) state.tracked.add(g.id);
  }
  if (!page.generations.length) {
    setGalleryStatus(
      "Nothing here yet. Write a prompt in the Create form and press Generate: " +
        "your videos appear here as they render, newest first.",
    );
  } else {
    setGalleryStatus("");
  }
  el.newer.disabled = offset === 0;
  el.older.disabled = !page.has_more;
  el.pageLabel.textContent = `Page ${Math.floor(offset / PAGE_SIZE) + 1}`;
  refreshExtendChoices();
  startPolling(false);
}

el.refresh.addEventListener("click", () => loadGallery());
el.showNew.addEventListener("click", () => {
  const card = state.lastCreated && cardOf(state.lastCreated);
  if (!card) return;
  card.scrollIntoView({ behavior: "smooth", block: "center" });
  $(".card-actions button:not([hidden])", card)?.focus({ preventScroll: true });
});
el.newer.addEventListener("click", () => loadGallery(Math.max(0, state.offset - PAGE_SIZE)));
el.older.addEventListener("click", () => loadGallery(state.offset + PAGE_SIZE));

function chooseMode(mode) {
  for (const input of el.modeInputs) input.checked = input.value === mode;
}

function extendFrom(id) {
  chooseMode("extend");
  applyChoices();
  refreshExtendChoices();
  el.source.value = id;
  setStatus(`Extending generation ${shortId(id)}: describe what happens next.`);
  el.form.scrollIntoView({ behavior: "smooth", block: "start" });
  el.prompt.focus({ preventScroll: true });
}

async function useLastFrame(id, button) {
  button.disabled = true;
  try {
    const generation = await api("GET", `/luma/generations/${encodeURIComponent(id)}`);
    const url = generation.last_frame?.url;
    if (!url) throw new ApiError(0, `Generation ${shortId(id)} has no last frame.`);
    chooseMode("new");
    applyChoices();
    const parts = frameParts("start");
    if (parts.fieldset.disabled) {
      throw new ApiError(0, "This model does not take start frames: choose another model.");
    }
    parts.file.value = "";
    parts.url.value = url;
    previewFrame("start", url);
    setStatus(`The last frame of ${shortId(id)} is the start frame.`);
    el.form.scrollIntoView({ behavior: "smooth", block: "start" });
    el.prompt.focus({ preventScroll: true });
  } catch (error) {
    if (error.status !== 401) say(el.createError, error.message);
  } finally {
    button.disabled = false;
  }
}

async function deleteGeneration(id, card) {
  try {
    await api("DELETE", `/dream-machine/v1/generations/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error.status === 401) return;
    if (error.status !== 404) {
      setGalleryStatus(`Could not delete ${shortId(id)}: ${error.message}`, true);
      return;
    }
  }
  state.tracked.delete(id);
  card.remove();
  announce(`Generation ${shortId(id)} deleted.`);
  await loadGallery();
  el.refresh.focus();
}

// Live progress: poll the running generations, backing off from 0.5 s to 4 s

function stopPolling() {
  window.clearTimeout(state.pollTimer);
  state.pollTimer = null;
}

function startPolling(reset) {
  if (reset) {
    state.pollDelay = POLL_FIRST_MS;
    stopPolling();
  }
  if (state.pollTimer === null && state.tracked.size && state.token) {
    state.pollTimer = window.setTimeout(pollOnce, state.pollDelay);
  }
}

async function pollOnce() {
  state.pollTimer = null;
  if (!state.token || !state.tracked.size) return;
  const ids = [...state.tracked];
  try {
    const answer = await api("POST", "/luma/tasks", { action: "retrieve_batch", ids });
    const seen = new Set();
    const ended = [];
    for (const item of answer.items) {
      seen.add(item.id);
      const response = item.response || {};
      if (response.state === "processing") updateProgress(item.id, response.progress);
      else ended.push(item.id);
    }
    for (const id of ids) {
      if (!seen.has(id)) state.tracked.delete(id); // deleted meanwhile
    }
    for (const id of ended) {
      state.tracked.delete(id);
      const generation = await api("GET", `/dream-machine/v1/generations/${encodeURIComponent(id)}`);
      replaceCard(generation);
      announce(
        generation.state === "completed"
          ? `Generation ${shortId(id)} completed.`
          : `Generation ${shortId(id)} failed: ${generation.failure_reason || "no reason given"}`,
      );
    }
  } catch (error) {
    if (error.status === 401) return;
    // a network hiccup: keep going, more slowly
  }
  state.pollDelay = Math.min(state.pollDelay * 1.6, POLL_MAX_MS);
  startPolling(false);
}

// Start

const saved = storedToken();
if (saved) signIn(saved, { stored: true });
else showSignin("");
