// The streamguard demo player: plays the demo's signed HLS (hls.js) and FLV
// (mpegts.js) URLs from an origin other than the proxy's, and shows the
// reason of a denial as the page reads it (the proxy exposes its
// x-streamguard-deny header to allowed origins).
//
// With ?report=URL the page runs its self-test instead (see tests/player.rs)
// and POSTs the results as JSON to URL.
"use strict";

const DENY_HEADER = "x-streamguard-deny";
const video = document.getElementById("video");
const statusLine = document.getElementById("status");
let hls = null;
let flv = null;

function show(text) {
  statusLine.textContent = text;
}

function stop() {
  if (hls) { hls.destroy(); hls = null; }
  if (flv) { flv.destroy(); flv = null; }
  video.removeAttribute("src");
  video.load();
}

async function signedUrls() {
  const r = await fetch("urls.json", { cache: "no-store" });
  if (!r.ok) throw new Error(await r.text());
  return r.json();
}

// The proxy's verdict on a URL, read from JavaScript: status and deny reason.
async function verdict(url) {
  const r = await fetch(url, { cache: "no-store" });
  const reason = r.headers.get(DENY_HEADER);
  if (r.body) await r.body.cancel();
  return { status: r.status, reason };
}

// Starts hls.js on `url`; `onFatal(data, reason)` gets fatal errors with the
// deny reason hls.js's own request saw (null when not exposed or none).
function playHls(url, onFatal) {
  stop();
  hls = new Hls({ enableWorker: false });
  hls.on(Hls.Events.ERROR, (_, data) => {
    if (!data.fatal) return;
    const xhr = data.networkDetails;
    const reason = xhr && typeof xhr.getResponseHeader === "function"
      ? xhr.getResponseHeader(DENY_HEADER) : null;
    onFatal(data, reason);
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => {
    const l = hls && hls.levels[data.level];
    if (l) show(`HLS: playing variant ${data.level} (${l.width}x${l.height})`);
  });
  hls.loadSource(url);
  hls.attachMedia(video);
  video.play().catch(() => {});
}

function playFlv(url) {
  stop();
  flv = mpegts.createPlayer({ type: "flv", isLive: true, url });
  flv.on(mpegts.Events.ERROR, (type, detail, info) => {
    show(`FLV: ${type} ${detail} ${info && info.msg ? info.msg : ""}`);
  });
  flv.attachMediaElement(video);
  flv.load();
  video.play().catch(() => {});
}

function switchVariant() {
  if (!hls || hls.levels.length < 2) return -1;
  const next = (hls.currentLevel + 1) % hls.levels.length;
  hls.currentLevel = next;
  return next;
}

function describeFatal(data, reason) {
  const code = data.response && data.response.code;
  return `HLS failed: ${data.details}` + (code ? ` (HTTP ${code})` : "") +
    (reason ? `, denied: ${reason}` : "");
}

async function interactive() {
  let urls;
  try {
    urls = await signedUrls();
  } catch (e) {
    show(`cannot get signed URLs: ${e}`);
    return;
  }
  document.getElementById("play-hls").onclick = () => {
    show("HLS: loading…");
    playHls(urls.hls, (d, r) => show(describeFatal(d, r)));
  };
  document.getElementById("switch").onclick = () => {
    const l = switchVariant();
    show(l < 0 ? "play HLS first" : `HLS: switching to variant ${l}…`);
  };
  document.getElementById("play-flv").onclick = () => {
    show("FLV: playing (mpegts.js)");
    playFlv(urls.flv);
  };
  document.getElementById("play-expired").onclick = async () => {
    show("expired URL: loading…");
    playHls(urls.expired_hls, async (d, r) => {
      const v = await verdict(urls.expired_hls);
      show(describeFatal(d, r) + `\nfetch(): HTTP ${v.status}, ${DENY_HEADER}: ${v.reason}`);
    });
  };
  document.getElementById("stop").onclick = () => { stop(); show("stopped"); };
  show("Ready. Choose a stream.");
}

// --- self-test (?report=URL) -------------------------------------------------

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(what, cond, ms) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function selfTest(report) {
  const out = { steps: [] };
  const step = (s) => { out.steps.push(s); show(out.steps.join("\n")); };
  try {
    out.hls_supported = Hls.isSupported();
    const urls = await signedUrls();
    step("urls");

    // HLS plays past 2 s.
    let fatal = null;
    const fragLevels = [];
    playHls(urls.hls, (d) => { fatal = d.details; });
    hls.on(Hls.Events.FRAG_CHANGED, (_, d) => fragLevels.push(d.frag.level));
    await until("HLS past 2 s", () => fatal || video.currentTime > 2, 20000);
    if (fatal) throw new Error(`HLS failed: ${fatal}`);
    out.levels = hls.levels.length;
    out.first_level = hls.currentLevel;
    out.played_secs = video.currentTime;
    step(`hls played ${video.currentTime.toFixed(2)} s on level ${hls.currentLevel}`);

    // A forced switch to the other variant, and playback going on there.
    let switched = -1;
    hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => { switched = d.level; });
    const target = switchVariant();
    out.target_level = target;
    await until("the switched variant to play",
      () => fatal || (switched === target && fragLevels[fragLevels.length - 1] === target), 15000);
    const at = video.currentTime;
    await until("playback after the switch", () => fatal || video.currentTime > at + 1, 15000);
    if (fatal) throw new Error(`HLS failed after the switch: ${fatal}`);
    out.switched_level = switched;
    out.level_after_switch = hls.currentLevel;
    out.played_after_switch_secs = video.currentTime - at;
    step(`switched to level ${switched}, played on to ${video.currentTime.toFixed(2)} s`);
    stop();

    // An expired URL fails, and the deny reason is readable.
    let expired = null;
    playHls(urls.expired_hls, (d, r) => {
      expired = { details: d.details, status: d.response ? d.response.code : null, reason: r };
    });
    await until("the expired URL to fail", () => expired, 10000);
    out.expired_hlsjs = expired;
    out.expired_fetch = await verdict(urls.expired_hls);
    step(`expired: ${JSON.stringify(out.expired_fetch)}`);
    stop();

    // The FLV stream, fetched cross-origin: its first bytes.
    const ctl = new AbortController();
    const r = await fetch(urls.flv, { signal: ctl.signal, cache: "no-store" });
    out.flv_status = r.status;
    const reader = r.body.getReader();
    let got = new Uint8Array(0);
    while (got.length < 13) {
      const { value, done } = await reader.read();
      if (done) break;
      const next = new Uint8Array(got.length + value.length);
      next.set(got);
      next.set(value, got.length);
      got = next;
    }
    ctl.abort();
    out.flv_magic = String.fromCharCode(...got.slice(0, 3));
    step(`flv: ${out.flv_status} ${out.flv_magic}`);

    // ...and mpegts.js plays it.
    let flvError = null;
    playFlv(urls.flv);
    flv.on(mpegts.Events.ERROR, (type, detail) => { flvError = `${type} ${detail}`; });
    await until("FLV past 1 s", () => flvError || video.currentTime > 1, 20000);
    if (flvError) throw new Error(`FLV failed: ${flvError}`);
    out.flv_played_secs = video.currentTime;
    step(`flv played ${video.currentTime.toFixed(2)} s`);
    stop();
  } catch (e) {
    out.error = String(e && e.message ? e.message : e);
    step(`error: ${out.error}`);
  }
  // A text/plain POST is a simple request: the test's listener needs no CORS.
  await fetch(report, { method: "POST", mode: "no-cors", body: JSON.stringify(out) });
}

const report = new URLSearchParams(location.search).get("report");
if (report) {
  selfTest(report);
} else {
  interactive();
}
