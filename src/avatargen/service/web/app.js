// avatargen web page: plain JavaScript, no build step, no dependencies.
// Every call goes through the service's authenticated /api routes with a Bearer header; the token
// lives in sessionStorage only (never in a URL, a cookie or the DOM after sign-in).
"use strict";

(() => {
  const APP = "/api/apps/avatar-generator";
  const TOKEN_KEY = "avatargen.token";
  const POLL_MS = 1000;
  const POLL_MAX_MS = 4000;

  const $ = (sel) => document.querySelector(sel);
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    me: null,
    models: [],
    templates: [],
    photo: null, // {file} or {photoId}
    photoBad: null, // a reason the photo cannot be used, e.g. too large
    ownPose: null, // File
    jobs: new Map(), // generationId -> {el, params, status, delay}
    shown: new Set(), // generation ids already in the gallery
    cursor: null,
    blobs: new Map(), // generationId -> blob URL of its image
  };

  // ---------- small DOM helper: never innerHTML with data ----------
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }
  const announce = (msg) => {
    $("#announce").textContent = msg;
  };
  const plural = (n, one, many) => `${n} ${n === 1 ? one : many || one + "s"}`;

  // ---------- API ----------
  class ApiError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  async function api(path, opts = {}) {
    const headers = Object.assign({}, opts.headers || {});
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    let body = opts.body;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    }
    let res;
    try {
      res = await fetch(path, { method: opts.method || "GET", headers, body, cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, "network", "Cannot reach the service. Check your connection and try again.");
    }
    if (res.status === 401 && path !== "/api/me") {
      signOut("Your session has ended. Please sign in again.");
      throw new ApiError(401, "unauthorized", "Please sign in again.");
    }
    if (!res.ok) {
      let code = `http_${res.status}`;
      let message = `The service answered ${res.status}.`;
      try {
        const err = (await res.json()).error || {};
        code = err.code || code;
        message = err.message || message;
      } catch (e) {
        /* not JSON: keep the generic message */
      }
      throw new ApiError(res.status, code, message, res.headers.get("Retry-After"));
    }
    if (opts.raw) return res;
    if (res.status === 204) return null;
    const type = res.headers.get("Content-Type") || "";
    return type.includes("json") ? res.json() : res.text();
  }

  // A friendlier sentence for the stable codes; the server's message otherwise.
  function explain(err) {
    const wait = err.retryAfter ? ` Try again in ${err.retryAfter} s.` : " Try again shortly.";
    switch (err.code) {
      case "insufficient_credits":
        return `Not enough credits. ${err.message}`;
      case "tier_too_low":
        return `Your plan does not include this. ${err.message}`;
      case "too_large":
        return `That file is too large. ${err.message}`;
      case "rate_limited":
        return `Too many requests.${wait}`;
      case "queue_full":
        return `The queue is full right now.${wait}`;
      case "no_face":
        return "No face found in this photo.";
      default:
        return err.message;
    }
  }

  // ---------- sign in / out, account bar ----------
  async function signIn(token) {
    state.token = token;
    const me = await api("/api/me");
    sessionStorage.setItem(TOKEN_KEY, token);
    state.me = me;
    renderMe();
    $("#signin").hidden = true;
    $("#account").hidden = false;
    $("#views").hidden = !me.admin;
    showView("studio");
    await Promise.all([loadTemplates(), loadModels()]); // the gallery names poses and models by them
    await loadGallery(true);
    updateCost();
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.me = null;
    for (const job of state.jobs.values()) clearTimeout(job.timer);
    state.jobs.clear();
    state.shown.clear();
    for (const url of state.blobs.values()) URL.revokeObjectURL(url);
    state.blobs.clear();
    clearPhoto();
    $("#jobs").replaceChildren();
    $("#gallery").replaceChildren();
    $("#new-token").textContent = ""; // a new user's token, shown once, goes with the admin's session
    $("#new-token-box").hidden = true;
    $("#admin-users tbody").replaceChildren();
    $("#jobs-section").hidden = true;
    $("#account").hidden = true;
    $("#studio").hidden = true;
    $("#admin").hidden = true;
    $("#signin").hidden = false;
    $("#signin-error").textContent = message || "";
    $("#token").value = "";
    $("#token").focus();
  }

  function renderMe() {
    const me = state.me;
    const credits = me.credits || {};
    $("#me-name").textContent = me.name;
    $("#me-tier").textContent = me.tier;
    $("#me-balance").textContent = String(credits.balance ?? 0);
    $("#me-reserved").textContent = credits.reserved ? ` (${credits.reserved} held for running jobs)` : "";
  }

  async function refreshMe() {
    try {
      state.me = await api("/api/me");
      renderMe();
      updateCost();
    } catch (e) {
      /* the bar keeps its last figures */
    }
  }

  function showView(name) {
    $("#studio").hidden = name !== "studio";
    $("#admin").hidden = name !== "admin";
    $("#show-studio").setAttribute("aria-pressed", String(name === "studio"));
    $("#show-admin").setAttribute("aria-pressed", String(name === "admin"));
    if (name === "admin") loadAdmin();
  }

  // ---------- photo ----------
  function clearPhoto() {
    state.photo = null;
    state.photoBad = null;
    $("#preview").hidden = true;
    $("#face-boxes").replaceChildren();
    const img = $("#preview-img");
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.removeAttribute("src");
    setPhotoStatus("", "");
    $("#photo").value = "";
  }

  function setPhotoStatus(text, kind) {
    const el = $("#photo-status");
    el.textContent = text;
    el.className = `status ${kind || ""}`;
  }

  async function usePhotoFile(file) {
    if (!file) return;
    if (!/^image\/(png|jpeg|webp)$/.test(file.type)) {
      setPhotoStatus(`"${file.name}" is not a PNG, JPEG or WebP photo. Please pick a photo.`, "bad");
      return;
    }
    clearPhoto();
    state.photo = { file };
    showPreview(URL.createObjectURL(file));
    setPhotoStatus("Looking for your face…", "");
    const form = new FormData();
    form.append("image", file);
    try {
      const found = await api(`${APP}/faces`, { method: "POST", body: form });
      if (state.photo?.file !== file) return; // another photo was picked meanwhile
      drawFaces(found);
      setPhotoStatus("Face found: the outlined face is the one your avatar will keep.", "ok");
    } catch (err) {
      if (state.photo?.file !== file) return;
      if (err.code === "no_face") {
        setPhotoStatus(
          "We could not find a face in this photo. You can still generate, but the avatar will not look like you: try a well-lit photo facing the camera.",
          "warn",
        );
      } else if (err.status === 413 || err.code === "too_large") {
        state.photoBad = `This photo is too large. ${err.message} Please pick a smaller one.`;
        setPhotoStatus(state.photoBad, "bad");
      } else if (err.status === 422) {
        state.photoBad = `This photo cannot be used: ${err.message}`;
        setPhotoStatus(state.photoBad, "bad");
      } else {
        setPhotoStatus(`Photo ready (face check unavailable: ${explain(err)})`, "");
      }
    }
    updateCost();
  }

  function showPreview(url) {
    $("#preview-img").src = url;
    $("#preview").hidden = false;
  }

  function drawFaces(found) {
    const boxes = $("#face-boxes");
    boxes.replaceChildren();
    const W = found.width || 1;
    const H = found.height || 1;
    for (const f of found.faces || []) {
      boxes.append(
        h("div", {
          class: "face-box",
          "data-test": "face-box",
          style: `left:${(100 * f.x) / W}%;top:${(100 * f.y) / H}%;width:${(100 * f.w) / W}%;height:${(100 * f.h) / H}%`,
        }),
      );
    }
  }

  async function useStoredPhoto(photoId) {
    clearPhoto();
    state.photo = { photoId };
    setPhotoStatus("Using the same photo as before. Now pick other poses.", "ok");
    try {
      const res = await api(`${APP}/photos/${encodeURIComponent(photoId)}`, { raw: true });
      showPreview(URL.createObjectURL(await res.blob()));
    } catch (err) {
      setPhotoStatus(`Using the same photo as before (its preview could not be loaded: ${explain(err)}).`, "");
    }
    updateCost();
    $("#pose-step").scrollIntoView({ block: "start" });
    $("#pose-gallery input")?.focus();
  }

  // ---------- poses ----------
  async function loadTemplates() {
    try {
      state.templates = await api(`${APP}/pose-templates`);
    } catch (err) {
      $("#pose-gallery").replaceChildren(h("p", { class: "error", text: `Poses unavailable: ${explain(err)}` }));
      return;
    }
    $("#pose-gallery").replaceChildren(
      ...state.templates.map((t) =>
        h(
          "div",
          { class: "pose" },
          h("input", {
            type: "checkbox",
            id: `pose-${t.id}`,
            value: t.id,
            name: "pose",
            "aria-describedby": t.description ? `pose-${t.id}-d` : null,
            onchange: updateCost,
          }),
          h(
            "label",
            { for: `pose-${t.id}`, title: t.description || t.name },
            h("img", { src: t.thumbnailUrl || `${APP}/pose-templates/${t.id}/thumbnail.png`, alt: "", loading: "lazy", width: 96, height: 96 }),
            h("span", { text: t.name || t.id }),
            t.description ? h("span", { class: "visually-hidden", id: `pose-${t.id}-d`, text: t.description }) : null,
          ),
        ),
      ),
    );
  }

  const templateName = (id) => state.templates.find((t) => t.id === id)?.name || id || "your pose";

  function selectedPoses() {
    return [...document.querySelectorAll("#pose-gallery input:checked")].map((i) => i.value);
  }

  // ---------- models ----------
  async function loadModels() {
    try {
      state.models = await api(`${APP}/models`);
    } catch (err) {
      $("#models").replaceChildren(h("p", { class: "error", text: `Qualities unavailable: ${explain(err)}` }));
      return;
    }
    const firstAllowed = state.models.find((m) => m.allowed);
    $("#models").replaceChildren(
      ...state.models.map((m) => {
        const id = `model-${m.modelKey}`;
        return h(
          "div",
          { class: "model" },
          h("input", {
            type: "radio",
            name: "model",
            id,
            value: m.modelKey,
            disabled: !m.allowed,
            checked: m === firstAllowed,
            "aria-describedby": m.allowed ? null : `${id}-lock`,
            onchange: updateCost,
          }),
          h(
            "label",
            { for: id },
            h("span", { class: "mname" }, m.name || m.modelKey, " ", h("span", { class: "muted", text: `· ${(m.quality || "").toUpperCase()}` })),
            h("span", { class: "mcost", text: `${plural(m.creditCost, "credit")} each` }),
            m.allowed ? null : h("span", { class: "lock", id: `${id}-lock` }, h("strong", { text: "Locked: " }), m.reason || `needs the ${m.tier} tier.`),
          ),
        );
      }),
    );
  }

  const selectedModel = () => {
    const key = document.querySelector('#models input[name="model"]:checked')?.value;
    return state.models.find((m) => m.modelKey === key) || null;
  };

  // ---------- cost line ----------
  function planCount() {
    return selectedPoses().length + (state.ownPose ? 1 : 0);
  }

  function updateCost() {
    const n = planCount();
    const model = selectedModel();
    $("#pose-count").textContent = n ? `(${n} selected)` : "";
    const line = $("#cost-line");
    const button = $("#generate");
    const balance = state.me?.credits?.balance ?? 0;
    const missing = [];
    if (!state.photo) missing.push("a photo");
    if (!n) missing.push("at least one pose");
    if (!model) missing.push("a quality");
    if (missing.length) {
      line.textContent = `Choose ${missing.join(", ")} to see the cost.`;
      button.disabled = true;
      return;
    }
    const cost = n * model.creditCost;
    line.textContent = `${plural(n, "avatar")} × ${plural(model.creditCost, "credit")} = ${plural(cost, "credit")}. Balance after: ${balance - cost}.`;
    if (cost > balance) line.textContent += " Not enough credits.";
    button.disabled = Boolean(state.photoBad) || cost > balance;
    line.dataset.cost = String(cost);
  }

  // ---------- generate ----------
  function requestForm(params) {
    const form = new FormData();
    if (params.photoId) form.append("photoId", params.photoId);
    else form.append("image", params.file);
    form.append("quality", params.quality);
    form.append("modelKey", params.modelKey);
    if (params.pose) form.append("pose", params.pose);
    else if (params.poses.length === 1) form.append("poseTemplateId", params.poses[0]);
    else form.append("poses", params.poses.join(","));
    return form;
  }

  async function submit(params) {
    let answer;
    try {
      answer = await api(`${APP}/generate`, { method: "POST", body: requestForm(params) });
    } catch (err) {
      if (params.pose && err.code === "invalid_pose") {
        // The pose file itself was refused (not OpenPose JSON or a skeleton PNG): say so plainly.
        err.message = `Your pose file was refused: ${err.message}. Use OpenPose JSON or a skeleton PNG, or pick poses from the gallery.`;
      }
      throw err;
    }
    const list = answer.generations || [answer];
    const photoId = answer.photoId || list[0]?.photoId;
    // The photo is stored now: the next set (or a retry) names it instead of uploading it again.
    if (photoId && state.photo && state.photo.file === params.file) state.photo.photoId = photoId;
    list.forEach((g, i) => {
      const poseId = params.pose ? null : g.poseTemplateId || params.poses[i] || params.poses[0];
      const one = Object.assign({}, params, { poses: poseId ? [poseId] : [], ownPose: Boolean(params.pose), photoId: photoId || params.photoId });
      addJob(g, one);
    });
    const cost = answer.creditCost ?? list.reduce((sum, g) => sum + (g.creditCost || 0), 0);
    return { count: list.length, cost };
  }

  async function generate() {
    const err = $("#generate-error");
    err.textContent = "";
    $("#generate-status").textContent = "";
    const model = selectedModel();
    const poses = selectedPoses();
    if (!state.photo || !model || planCount() === 0) return updateCost();
    const base = {
      file: state.photo.file || null,
      photoId: state.photo.photoId || null,
      quality: model.quality,
      modelKey: model.modelKey,
      modelName: model.name || model.modelKey,
    };
    const button = $("#generate");
    button.disabled = true;
    try {
      let count = 0;
      let cost = 0;
      const add = (r) => {
        count += r.count;
        cost += r.cost;
      };
      if (poses.length) add(await submit(Object.assign({}, base, { poses })));
      if (state.ownPose) add(await submit(Object.assign({}, base, { poses: [], pose: state.ownPose, photoId: state.photo?.photoId || null })));
      await refreshMe();
      for (const box of document.querySelectorAll("#pose-gallery input:checked")) box.checked = false;
      updateCost();
      $("#generate-status").textContent = `${plural(count, "avatar")} queued for ${plural(cost, "credit")}. Your balance is now ${state.me?.credits?.balance ?? "?"}.`;
    } catch (e) {
      err.textContent = explain(e);
      await refreshMe();
    }
  }

  // ---------- live jobs ----------
  function addJob(g, params) {
    const id = g.generationId;
    if (state.jobs.has(id) || state.shown.has(id)) return;
    const stateEl = h("span", { class: "state" });
    const actions = h("span", { class: "actions" });
    const el = h(
      "li",
      { class: "job", "data-id": id, "data-test": "job" },
      h("span", {}, h("strong", { text: params.ownPose ? "Your pose" : templateName(params.poses[0]) }), h("span", { class: "muted", text: ` · ${params.modelName || g.modelKey || ""}` })),
      stateEl,
      actions,
    );
    $("#jobs").prepend(el);
    $("#jobs-section").hidden = false;
    const job = { el, stateEl, actions, params, delay: POLL_MS, timer: null };
    state.jobs.set(id, job);
    renderJob(id, Object.assign({ status: "pending" }, g));
    job.timer = setTimeout(() => poll(id), POLL_MS);
  }

  async function poll(id) {
    const job = state.jobs.get(id);
    if (!job) return;
    let g;
    try {
      g = await api(`${APP}/generations/${encodeURIComponent(id)}`);
    } catch (err) {
      if (!state.jobs.has(id)) return;
      if (err.status === 404) return dropJob(id);
      job.delay = Math.min(job.delay * 2, POLL_MAX_MS);
      job.timer = setTimeout(() => poll(id), job.delay);
      return;
    }
    if (!state.jobs.has(id)) return;
    renderJob(id, g);
    if (g.status === "pending" || g.status === "processing") {
      job.timer = setTimeout(() => poll(id), job.delay);
    } else if (g.status === "completed") {
      dropJob(id);
      addResult(g, true);
      announce(`Your ${templateName(g.poseTemplateId)} avatar is ready.`);
      refreshMe();
    } else {
      refreshMe(); // a failed or cancelled job's credits come back
    }
  }

  function renderJob(id, g) {
    const job = state.jobs.get(id);
    job.el.dataset.status = g.status;
    if (g.photoId) job.params.photoId = g.photoId;
    const actions = [];
    let text;
    if (g.status === "pending") {
      text = g.waitingFor ? `Waiting for the model: ${g.waitingFor}` : g.queuePosition ? `Queued: position ${g.queuePosition}` : "Queued";
      actions.push(h("button", { type: "button", onclick: () => cancelJob(id), text: "Cancel" }));
    } else if (g.status === "processing") {
      text = g.waitingFor ? `Waiting for the model: ${g.waitingFor}` : "Generating…";
    } else if (g.status === "failed") {
      const reason = g.error?.message || g.error?.code || "unknown error";
      text = `Failed: ${reason}`;
      actions.push(h("button", { type: "button", onclick: () => retryJob(id), text: "Retry" }));
      actions.push(h("button", { type: "button", class: "quiet", onclick: () => dropJob(id), text: "Dismiss" }));
    } else if (g.status === "cancelled") {
      text = "Cancelled, credits returned";
      actions.push(h("button", { type: "button", class: "quiet", onclick: () => dropJob(id), text: "Dismiss" }));
    } else {
      text = g.status;
    }
    const busy = g.status === "pending" || g.status === "processing";
    job.stateEl.replaceChildren(busy ? h("span", { class: "spinner", "aria-hidden": "true" }) : "", text);
    job.actions.replaceChildren(...actions);
  }

  function dropJob(id) {
    const job = state.jobs.get(id);
    if (!job) return;
    clearTimeout(job.timer);
    job.el.remove();
    state.jobs.delete(id);
    $("#jobs-section").hidden = state.jobs.size === 0;
  }

  async function cancelJob(id) {
    try {
      await api(`${APP}/generations/${encodeURIComponent(id)}`, { method: "DELETE" });
      renderJob(id, { status: "cancelled" });
      clearTimeout(state.jobs.get(id)?.timer);
    } catch (err) {
      $("#generate-error").textContent = explain(err);
    }
    refreshMe();
  }

  async function retryJob(id) {
    const job = state.jobs.get(id);
    if (!job) return;
    const params = Object.assign({}, job.params);
    if (params.ownPose && !params.pose) params.pose = state.ownPose;
    try {
      await submit(params);
      dropJob(id);
    } catch (err) {
      job.stateEl.textContent = `Retry failed: ${explain(err)}`;
    }
    refreshMe();
  }

  // ---------- gallery ----------
  async function loadGallery(first) {
    if (first) {
      state.cursor = null;
      state.shown.clear();
      $("#gallery").replaceChildren();
    }
    let page;
    try {
      const q = new URLSearchParams({ limit: "24" });
      if (state.cursor) q.set("cursor", state.cursor);
      page = await api(`${APP}/generations?${q}`);
    } catch (err) {
      $("#gallery-empty").textContent = `Your avatars could not be loaded: ${explain(err)}`;
      return;
    }
    const items = Array.isArray(page) ? page : page.generations || page.items || [];
    state.cursor = Array.isArray(page) ? null : page.nextCursor || page.cursor || null;
    for (const g of items) {
      if (g.status === "completed") addResult(g, false);
      else if ((g.status === "pending" || g.status === "processing") && first) {
        addJob(g, { poses: [g.poseTemplateId], photoId: g.photoId, modelKey: g.modelKey, modelName: modelName(g.modelKey), quality: qualityOf(g.modelKey) });
      }
    }
    $("#gallery-more").hidden = !state.cursor;
    galleryEmpty();
  }

  const modelName = (key) => state.models.find((m) => m.modelKey === key)?.name || key || "";
  const qualityOf = (key) => state.models.find((m) => m.modelKey === key)?.quality || "sd";
  const galleryEmpty = () => {
    $("#gallery-empty").hidden = $("#gallery").children.length > 0;
    $("#gallery-empty").textContent = "Nothing yet: your avatars appear here, newest first.";
  };

  function addResult(g, newest) {
    const id = g.generationId;
    if (state.shown.has(id)) return;
    state.shown.add(id);
    const img = h("img", { alt: `Avatar in the ${templateName(g.poseTemplateId)} pose`, "data-test": "result-img" });
    const pose = g.poseTemplateId ? templateName(g.poseTemplateId) : "Your pose";
    const when = g.completedAt || g.createdAt;
    const card = h(
      "li",
      { class: "result", "data-id": id, "data-test": "result", "data-pose": g.poseTemplateId || "" },
      h(
        "figure",
        { style: "margin:0" },
        h("div", { class: "shot" }, img),
        h(
          "figcaption",
          {},
          h("strong", { text: pose }),
          h("div", { class: "meta", text: [modelName(g.modelKey), when ? new Date(when).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : ""].filter(Boolean).join(" · ") }),
        ),
      ),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", "data-test": "download", "aria-label": `Download the ${pose} avatar`, onclick: () => download(g), text: "Download" }),
        h("button", { type: "button", class: "danger", "data-test": "delete", "aria-label": `Delete the ${pose} avatar`, onclick: (e) => removeResult(g, card, e.currentTarget), text: "Delete" }),
        g.photoId
          ? h("button", { type: "button", class: "wide", "aria-label": `Same photo, other poses (from the ${pose} avatar)`, onclick: () => useStoredPhoto(g.photoId), text: "Same photo, other poses" })
          : null,
      ),
    );
    const gallery = $("#gallery");
    if (newest) gallery.prepend(card);
    else gallery.append(card);
    galleryEmpty();
    imageUrl(g)
      .then((url) => {
        img.src = url;
      })
      .catch(() => {
        img.alt = "The image could not be loaded";
      });
  }

  async function imageUrl(g) {
    const id = g.generationId;
    if (!state.blobs.has(id)) {
      const path = g.outputUrl || `${APP}/generations/${encodeURIComponent(id)}/image`;
      const res = await api(path, { raw: true });
      state.blobs.set(id, URL.createObjectURL(await res.blob()));
    }
    return state.blobs.get(id);
  }

  async function download(g) {
    try {
      const url = await imageUrl(g); // the PNG exactly as served, its metadata chunks included
      const a = h("a", { href: url, download: `avatar-${g.poseTemplateId || "pose"}-${g.generationId}.png` });
      document.body.append(a);
      a.click();
      a.remove();
    } catch (err) {
      announce(`Download failed: ${explain(err)}`);
    }
  }

  async function removeResult(g, card, button) {
    // Two steps, no modal: the first press asks, the second deletes.
    if (button.dataset.armed !== "1") {
      button.dataset.armed = "1";
      button.textContent = "Really delete?";
      setTimeout(() => {
        button.dataset.armed = "";
        button.textContent = "Delete";
      }, 5000);
      return;
    }
    try {
      await api(`${APP}/generations/${encodeURIComponent(g.generationId)}`, { method: "DELETE" });
      const next = card.nextElementSibling || card.previousElementSibling;
      card.remove();
      state.shown.delete(g.generationId);
      const url = state.blobs.get(g.generationId);
      if (url) URL.revokeObjectURL(url);
      state.blobs.delete(g.generationId);
      galleryEmpty();
      announce("Avatar deleted.");
      (next?.querySelector("button") || $("#gallery-title")).focus?.();
    } catch (err) {
      announce(`Delete failed: ${explain(err)}`);
      button.textContent = "Delete";
      button.dataset.armed = "";
    }
  }

  // ---------- admin ----------
  // "byStatus" -> "By status", "jobsDone" -> "Jobs done"; model keys and names stay as they are.
  const label = (k) => (/^[a-z]+([A-Z][a-z]*)*$/.test(k) ? k.replace(/([A-Z])/g, " $1").toLowerCase().replace(/^./, (c) => c.toUpperCase()) : k);

  function renderValue(v) {
    // Admin answers are shown generically: numbers and strings as is, lists of records as tables,
    // objects as definition lists, so a new field on the server needs no page change.
    if (v === null || v === undefined) return h("span", { class: "muted", text: "–" });
    if (Array.isArray(v)) {
      if (!v.length) return h("span", { class: "muted", text: "none" });
      if (typeof v[0] !== "object" || v[0] === null) return h("span", { text: v.join(", ") });
      const cols = [...new Set(v.flatMap((r) => Object.keys(r)))];
      return h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { class: "table" },
          h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col", text: label(c) })))),
          h("tbody", {}, v.map((r) => h("tr", {}, cols.map((c) => h("td", {}, typeof r[c] === "object" ? renderValue(r[c]) : r[c] ?? ""))))),
        ),
      );
    }
    if (typeof v === "object") {
      const keys = Object.keys(v);
      if (!keys.length) return h("span", { class: "muted", text: "none" });
      return h("dl", {}, keys.map((k) => [h("dt", { text: label(k) }), h("dd", {}, renderValue(v[k]))]));
    }
    return h("span", { text: String(v) });
  }

  async function loadAdmin() {
    $("#admin-error").textContent = "";
    const part = async (path, target) => {
      try {
        const data = await api(path);
        $(target).replaceChildren(renderValue(data));
        return data;
      } catch (err) {
        $(target).replaceChildren(h("p", { class: "error", text: explain(err) }));
        return null;
      }
    };
    await Promise.all([
      loadUsers(),
      part("/api/admin/queue", "#admin-queue"),
      part("/api/admin/workers", "#admin-workers"),
      part("/api/admin/stats", "#admin-stats"),
    ]);
  }

  async function loadUsers() {
    let data;
    try {
      data = await api("/api/admin/users");
    } catch (err) {
      $("#admin-error").textContent = explain(err);
      return;
    }
    const users = Array.isArray(data) ? data : data.users || [];
    const num = (u, k) => u.credits?.[k] ?? u[k] ?? 0;
    $("#admin-users tbody").replaceChildren(
      ...users.map((u) =>
        h("tr", { "data-user": u.name }, h("th", { scope: "row", text: u.name }), h("td", { text: u.tier }), h("td", { class: "n", text: num(u, "balance") }), h("td", { class: "n", text: num(u, "reserved") })),
      ),
    );
    for (const sel of document.querySelectorAll(".user-select")) {
      const keep = sel.value;
      sel.replaceChildren(...users.map((u) => h("option", { value: u.name, text: u.name })));
      if (users.some((u) => u.name === keep)) sel.value = keep;
    }
    const tiers = new Set([...users.map((u) => u.tier), ...state.models.map((m) => m.tier)].filter(Boolean));
    $("#tier-list").replaceChildren(...[...tiers].map((t) => h("option", { value: t })));
  }

  function adminForm(formSel, statusSel, action) {
    $(formSel).addEventListener("submit", async (e) => {
      e.preventDefault();
      const status = $(statusSel);
      status.className = "status";
      status.textContent = "…";
      try {
        status.textContent = await action();
        status.classList.add("ok");
        await loadUsers();
        refreshMe();
      } catch (err) {
        status.textContent = explain(err);
        status.classList.add("bad");
      }
    });
  }

  // ---------- wiring ----------
  function wire() {
    $("#signin-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const token = $("#token").value.trim();
      $("#signin-error").textContent = "";
      if (!token) {
        $("#signin-error").textContent = "Enter your token.";
        return;
      }
      try {
        await signIn(token);
        $("#token").value = "";
      } catch (err) {
        state.token = null;
        sessionStorage.removeItem(TOKEN_KEY);
        $("#signin-error").textContent = err.status === 401 ? "That token was not accepted. Check it and try again." : explain(err);
      }
    });
    $("#sign-out").addEventListener("click", () => signOut(""));
    $("#show-studio").addEventListener("click", () => showView("studio"));
    $("#show-admin").addEventListener("click", () => showView("admin"));
    $("#admin-refresh").addEventListener("click", loadAdmin);

    $("#photo").addEventListener("change", (e) => usePhotoFile(e.target.files[0]));
    const zone = $("#dropzone");
    for (const ev of ["dragenter", "dragover"]) {
      zone.addEventListener(ev, (e) => {
        e.preventDefault();
        zone.classList.add("over");
      });
    }
    for (const ev of ["dragleave", "drop"]) zone.addEventListener(ev, () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      usePhotoFile(e.dataTransfer.files[0]);
    });
    // A photo dropped anywhere else must not make the browser navigate away from the page.
    window.addEventListener("dragover", (e) => e.preventDefault());
    window.addEventListener("drop", (e) => e.preventDefault());

    $("#own-pose").addEventListener("change", (e) => {
      state.ownPose = e.target.files[0] || null;
      $("#own-pose-clear").hidden = !state.ownPose;
      updateCost();
    });
    $("#own-pose-clear").addEventListener("click", () => {
      state.ownPose = null;
      $("#own-pose").value = "";
      $("#own-pose-clear").hidden = true;
      updateCost();
      $("#own-pose").focus();
    });
    $("#generate-form").addEventListener("submit", (e) => {
      e.preventDefault();
      generate();
    });
    $("#gallery-more").addEventListener("click", () => loadGallery(false));

    adminForm("#grant-form", "#grant-status", async () => {
      const name = $("#grant-user").value;
      const amount = Number($("#grant-amount").value);
      await api(`/api/admin/users/${encodeURIComponent(name)}/credits`, { method: "POST", json: { amount } });
      return `Granted ${plural(amount, "credit")} to ${name}.`;
    });
    adminForm("#tier-form", "#tier-status", async () => {
      const name = $("#tier-user").value;
      const tier = $("#tier-value").value.trim();
      await api(`/api/admin/users/${encodeURIComponent(name)}/tier`, { method: "POST", json: { tier } });
      return `${name} is now on the ${tier} tier.`;
    });
    adminForm("#user-form", "#user-status", async () => {
      const name = $("#new-name").value.trim();
      const body = { name, tier: $("#new-tier").value.trim(), credits: Number($("#new-credits").value || 0) };
      const made = await api("/api/admin/users", { method: "POST", json: body });
      $("#new-token").textContent = made.token || "";
      $("#new-token-box").hidden = !made.token;
      return `Added ${name}. Copy their token now: it is not shown again.`;
    });
  }

  wire();
  if (state.token) {
    signIn(state.token).catch((err) => signOut(err.status === 401 ? "Your session has ended. Please sign in again." : explain(err)));
  } else {
    $("#token").focus();
  }
})();
