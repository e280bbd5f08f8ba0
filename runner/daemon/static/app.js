/* smrun web view: the runs list, one run's jobs on a timeline, a job's
 * details with its live log. Plain DOM, no libraries.
 *
 * Text from the API reaches the page only through textContent and
 * setAttribute (see el() and svg()), never through innerHTML. */
'use strict';

const RUNS_PAGE = 50;
const LOG_CAP = 5000;            // log lines kept in the DOM
const RUNS_EVERY = 5000;         // ms between refreshes of the runs list
const TRIALS_EVERY = 10000;      // ms between refreshes of a running tuning job's trials
const TOKEN_KEY = 'smrun.token';
const RUN_ENDED = new Set(['succeeded', 'failed', 'stopped']);
const STATES = ['running', 'waiting', 'Succeeded', 'Failed', 'StoppedByUs', 'NotStarted', 'Unknown', 'Detached'];
const STATE_LABEL = {
  running: 'running', waiting: 'waiting', Succeeded: 'succeeded', Failed: 'failed',
  StoppedByUs: 'stopped', NotStarted: 'not started', Unknown: 'unknown', Detached: 'detached',
};
// In-progress segments are coloured by secondary status (else status); unknown ones get a hashed hue.
const PHASE_COLOUR = {
  Pending: '#cbd5e1', Starting: '#93c5fd', LaunchingMLInstances: '#93c5fd',
  PreparingTrainingStack: '#a5b4fc', Downloading: '#5eb8b0', DownloadingTrainingImage: '#5eb8b0',
  Training: '#3b82f6', Uploading: '#a78bfa', InProgress: '#60a5fa', Creating: '#7dd3fc',
  Updating: '#7dd3fc', Restarting: '#fbbf24', Interrupted: '#fbbf24', Stopping: '#f59e0b',
  Completed: '#8fd1a8', InService: '#8fd1a8', Failed: '#eba3a3', Stopped: '#b8bcc3',
};

const state = {
  runs: [], older: [], next: null, runsSig: '', runsBusy: false,
  runId: null, run: null, jobs: new Map(), order: [], runSeq: 0,
  runNotices: [], jobNotices: new Map(), runStream: null, live: 'off',
  jobKey: null, logStream: null, logQueue: [], logStick: true, logDropped: 0,
  trialsTimer: null, trialsFor: null,
  armed: null, armedUntil: 0, stopAsked: new Set(),
  maxSeen: 0, dirty: false, legendSig: '', headerSig: '', jobSig: '', connecting: null, runMissing: false,
};
let token = null;
let tokenWait = null;

/* ---------- small helpers ---------- */

const $ = (sel) => document.querySelector(sel);
const enc = encodeURIComponent;
const pad = (n) => String(n).padStart(2, '0');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// The browser's clock may lag the daemon's: never draw "now" before the last event seen.
const now = () => Math.max(Date.now() / 1000, state.maxSeen);

function el(tag, attrs, ...kids) {
  const n = document.createElement(tag);
  setAttrs(n, attrs);
  for (const k of kids.flat()) if (k != null && k !== false) n.append(k);  // strings become text nodes
  return n;
}
// replaceChildren() would turn a null into the text "null"
const fill = (node, ...kids) => node.replaceChildren(...kids.flat().filter((k) => k != null && k !== false));
function svg(tag, attrs, text) {
  const n = document.createElementNS('http://www.w3.org/2000/svg', tag);
  setAttrs(n, attrs);
  if (text != null) n.textContent = text;
  return n;
}
function setAttrs(n, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'text') n.textContent = v;
    else if (k === 'style') for (const [p, x] of Object.entries(v)) n.style.setProperty(p, x);
    else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v === true ? '' : String(v));
  }
}
function clock(t) {
  if (t == null) return '–';
  const d = new Date(t * 1000), today = new Date();
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === today.toDateString()) return hms;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms}`;
}
function dur(s) {
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  if (m < 60) return `${m}m ${pad(s % 60)}s`;
  if (h < 24) return `${h}h ${pad(m % 60)}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}
const ago = (t) => (now() - t < 5 ? 'just now' : `${dur(now() - t)} ago`);
function fmtNum(v) {
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(5)));
}
function hue(text) {  // a stable colour per string (instance labels, unknown phases)
  let h = 2166136261;  // FNV-1a: "algo-1" and "algo-2" land far apart
  for (const c of String(text)) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  return h % 360;
}
function chip(stateName, count) {
  const label = STATE_LABEL[stateName] || stateName;
  return el('span', { class: `chip s-${stateName}`, title: label, 'data-state': stateName },
    count == null ? label : `${count} ${label}`);
}
function countChips(counts) {
  const box = el('span', { class: 'chips' });
  const keys = [...STATES, ...Object.keys(counts || {}).filter((k) => !STATES.includes(k))];
  for (const k of keys) if (counts && counts[k]) box.append(chip(k, counts[k]));
  return box;
}
function showError(err) {
  const box = $('#error');
  box.hidden = !err;
  box.textContent = err ? String(err.message || err) : '';
}
function debounce(fn, ms) {
  let t = null;
  return () => { clearTimeout(t); t = setTimeout(fn, ms); };
}

/* ---------- URL hash: #run=<id>&job=<key> (and #token=... once) ---------- */

function readHash() {
  const out = {};
  for (const part of location.hash.replace(/^#/, '').split('&')) {
    if (!part) continue;
    const i = part.indexOf('=');
    try {  // decodeURIComponent, not URLSearchParams: a token may hold '+'
      out[decodeURIComponent(i < 0 ? part : part.slice(0, i))] = i < 0 ? '' : decodeURIComponent(part.slice(i + 1));
    } catch (e) { /* a malformed part is ignored */ }
  }
  return out;
}
function hashOf(obj) {
  const parts = Object.entries(obj).filter(([, v]) => v != null && v !== '').map(([k, v]) => `${enc(k)}=${enc(v)}`);
  return parts.length ? `#${parts.join('&')}` : '';
}
function go(runId, jobKey) {
  const h = hashOf({ run: runId, job: jobKey });
  if (location.hash !== h) location.hash = h;  // hashchange → route()
  else route();
}

/* ---------- auth and requests ---------- */

function takeToken() {
  const h = readHash();
  if (h.token) {
    token = h.token;
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch (e) { /* storage off: keep it in memory */ }
    delete h.token;  // keep the token out of the address bar, history and bookmarks
    history.replaceState(null, '', location.pathname + location.search + hashOf(h));
  } else if (token == null) {
    try { token = sessionStorage.getItem(TOKEN_KEY); } catch (e) { token = null; }
  }
}
function authHeaders(extra) {
  return token ? { ...extra, Authorization: `Bearer ${token}` } : { ...extra };
}
// One token form for every request that got a 401; they all retry once it is submitted.
function askToken() {
  if (tokenWait) return tokenWait;
  tokenWait = new Promise((resolve) => {
    const overlay = $('#token-overlay'), input = $('#token-input');
    $('#token-note').textContent = token
      ? 'The daemon refused this token. Enter another one.'
      : 'This smrun daemon needs an access token.';
    overlay.hidden = false;
    input.value = '';
    input.focus();
    $('#token-form').onsubmit = (ev) => {
      ev.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      token = value;
      try { sessionStorage.setItem(TOKEN_KEY, token); } catch (e) { /* memory only */ }
      overlay.hidden = true;
      tokenWait = null;
      resolve();
    };
  });
  return tokenWait;
}
class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}
async function api(path, method = 'GET') {
  for (;;) {
    const resp = await fetch(path, { method, headers: authHeaders({ Accept: 'application/json' }), cache: 'no-store' });
    if (resp.status === 401) { await askToken(); continue; }
    if (!resp.ok) {
      let text = await resp.text().catch(() => '');
      try { text = JSON.parse(text).error || text; } catch (e) { /* not the daemon's JSON error */ }
      text = String(text).slice(0, 200);
      throw new HttpError(resp.status, `${method} ${path}: HTTP ${resp.status}${text ? ` — ${text}` : ''}`);
    }
    showError(null);
    return resp.status === 204 ? null : resp.json();
  }
}

/* ---------- server-sent events over fetch() ---------- */

// Cuts a text/event-stream into events. Chunks may end anywhere (mid-line,
// between \r and \n); an unfinished event is kept until its blank line.
class SSEParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buf = '';
    this.first = true;
    this.type = ''; this.data = []; this.id = null; this.lastId = null;
  }
  feed(text) {
    if (this.first && text) {
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      this.first = false;
    }
    const buf = this.buf + text;
    const re = /\r\n|\r|\n/g;
    let pos = 0, m;
    while ((m = re.exec(buf))) {
      if (m[0] === '\r' && m.index === buf.length - 1) break;  // a \n may follow in the next chunk
      this.line(buf.slice(pos, m.index));
      pos = m.index + m[0].length;
    }
    this.buf = buf.slice(pos);
  }
  line(line) {
    if (line === '') return this.dispatch();
    if (line[0] === ':') return;  // comment (keepalive)
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'event') this.type = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.id = value;
  }
  dispatch() {
    // The id counts only once its event is complete: a block cut off by a
    // dropped connection is sent again after the reconnect. Unlike
    // EventSource, an event with a type but no data (`event: end`) is kept.
    if (this.id != null) this.lastId = this.id;
    if (this.data.length || this.type) this.onEvent({ type: this.type || 'message', data: this.data.join('\n'), id: this.lastId });
    this.type = ''; this.data = []; this.id = null;
  }
}

// Follows one SSE endpoint until isDone() says so after the server closed it
// (or stop() is called). A dropped connection is retried after a short delay
// with Last-Event-ID, so no event is missed or repeated.
function follow(path, { onEvent, onState, isDone }) {
  const ctl = new AbortController();
  let stopped = false, lastId = null, delay = 1000;
  (async () => {
    while (!stopped) {
      try {
        onState('connecting');
        const headers = authHeaders({ Accept: 'text/event-stream' });
        if (lastId != null) headers['Last-Event-ID'] = lastId;
        const resp = await fetch(path, { headers, signal: ctl.signal, cache: 'no-store' });
        if (resp.status === 401) { await askToken(); continue; }
        if (!resp.ok) {
          onState('error', resp.status);
          if (isDone(resp.status)) return;
        } else {
          onState('live');
          const parser = new SSEParser((ev) => {
            if (ev.id != null) lastId = ev.id;
            delay = 1000;
            onEvent(ev);
          });
          const reader = resp.body.getReader(), decoder = new TextDecoder();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            parser.feed(decoder.decode(value, { stream: true }));
          }
          if (isDone()) { onState('ended'); return; }
        }
      } catch (e) {
        if (stopped) return;  // aborted by stop()
      }
      if (stopped) return;
      onState('retry');
      await sleep(delay);
      delay = Math.min(delay * 2, 15000);
    }
  })();
  return { stop() { stopped = true; ctl.abort(); } };
}

/* ---------- runs list ---------- */

async function loadRuns() {
  if (state.runsBusy || document.hidden) return;
  state.runsBusy = true;
  try {
    const body = await api(`/v1/runs?limit=${RUNS_PAGE}`);
    state.runs = body.runs || [];
    if (!state.older.length) state.next = body.next || null;
    document.body.dataset.ready = '1';
    renderRuns();
  } catch (e) {
    showError(e);
  } finally {
    state.runsBusy = false;
  }
}
const loadRunsSoon = debounce(loadRuns, 800);

async function loadOlderRuns() {
  if (!state.next) return;
  try {
    // the cursor: the run_id the previous page's `next` named
    const body = await api(`/v1/runs?limit=${RUNS_PAGE}&before=${enc(state.next)}`);
    state.older.push(...(body.runs || []));
    state.next = body.next || null;
    renderRuns();
  } catch (e) { showError(e); }
}

function renderRuns() {
  if (!document.body.dataset.ready && !state.runs.length) return;  // nothing fetched yet
  const seen = new Set(state.runs.map((r) => r.run_id));
  const runs = [...state.runs, ...state.older.filter((r) => !seen.has(r.run_id))];
  // Rebuild only when something shown changed (the "ago" text counts, at minute grain).
  const sig = JSON.stringify([runs, state.runId, state.next, Math.floor(Date.now() / 60000)]);
  if (sig === state.runsSig) return;
  state.runsSig = sig;
  const list = $('#runs-list');
  const focused = document.activeElement && document.activeElement.dataset.runId;
  list.replaceChildren(...runs.map((r) => {
    const li = el('li', {
      class: `run-item${r.run_id === state.runId ? ' selected' : ''}`, tabindex: 0,
      'data-run-id': r.run_id, 'data-run-status': r.status,
      onclick: () => go(r.run_id), onkeydown: (ev) => { if (ev.key === 'Enter') go(r.run_id); },
    },
    el('div', { class: 'run-line' },
      el('span', { class: `run-status r-${r.status}`, text: r.status }),
      el('span', { class: 'run-id', title: r.run_id, text: r.run_id }),
      r.stop_requested && !RUN_ENDED.has(r.status) ? el('span', { class: 'tag', text: 'stopping' }) : null),
    el('div', { class: 'run-meta muted', text: [r.source, ago(r.created), `${r.jobs_total} jobs`].filter(Boolean).join(' · ') }),
    countChips(r.counts));
    return li;
  }));
  if (focused) { const li = list.querySelector(`[data-run-id="${CSS.escape(focused)}"]`); if (li) li.focus(); }
  $('#runs-empty').hidden = runs.length > 0;
  $('#runs-count').textContent = runs.length ? String(runs.length) : '';
  $('#runs-more').hidden = !state.next;
}

/* ---------- one run: model ---------- */

function route() {
  takeToken();
  const h = readHash();
  const runId = h.run || null;
  if (runId !== state.runId) openRun(runId);
  selectJob(runId ? h.job || null : null);
  renderRuns();
}

function openRun(runId) {
  if (state.runStream) state.runStream.stop();
  selectJob(null);
  Object.assign(state, {
    runId, run: null, jobs: new Map(), order: [], runNotices: [], jobNotices: new Map(), runMissing: false,
    runStream: null, live: 'off', maxSeen: 0, legendSig: '', headerSig: '', stopAsked: new Set(),
  });
  $('#run-empty').hidden = !!runId;
  $('#run-view').hidden = !runId;
  $('#run-header').replaceChildren(el('span', { class: 'muted', text: 'Loading…' }));
  $('#tl-rows').replaceChildren();
  if (runId) connectRun();
}

// Fetches the run, then follows its events; retried by the runs refresh if the daemon was unreachable.
async function connectRun() {
  const runId = state.runId;
  if (state.connecting === runId || state.runStream || state.runMissing) return;
  state.connecting = runId;
  try { await loadRun(); } finally { if (state.connecting === runId) state.connecting = null; }
  if (state.runId !== runId || !state.run || state.runStream) return;
  // Subscribe only once the run is known: the stream replays the run's events
  // from the start, and addEntry() drops those the fetched run already holds.
  let ended = false;  // the daemon's last event is `end`: it tells the end from a drop
  state.runStream = follow(`/v1/runs/${enc(runId)}/events`, {
    onEvent: (ev) => { if (ev.type === 'end') ended = true; else applyEvent(ev); },
    onState: (s) => {
      state.live = s;
      invalidate();
      if (s === 'ended') loadRun();
      if (s === 'retry') loadRunSoon();  // the run may have ended while we were away
    },
    isDone: (status) => ended || status === 404 || runOver(),
  });
}

async function loadRun() {
  const runId = state.runId, seq = ++state.runSeq;
  try {
    const run = await api(`/v1/runs/${enc(runId)}`);
    if (runId !== state.runId || seq !== state.runSeq) return;  // a newer request or another run
    const { jobs, ...rest } = run;
    state.run = rest;
    const keys = (jobs || []).map((j) => j.job);
    for (const j of jobs || []) state.jobs.set(j.job, { ...j, timeline: j.timeline || [] });
    state.order = [...keys, ...state.order.filter((k) => !keys.includes(k))];
    invalidate();
  } catch (e) {
    if (runId !== state.runId) return;
    if (e.status !== 404) return showError(e);
    state.runMissing = true;
    $('#run-header').replaceChildren(el('span', { class: 'muted', text: `No run ${runId}.` }));
  }
}
const loadRunSoon = debounce(loadRun, 500);

function ensureJob(key) {
  if (!state.jobs.has(key)) {
    state.jobs.set(key, {
      job: key, kind: null, name: null, state: 'waiting', status: null, secondary: null, outcome: null,
      failure_reason: null, outputs: {}, details: {}, arn: null, submitted: null, ended: null,
      attached: false, needs: [], timeline: [], links: {},
    });
    state.order.push(key);
  }
  return state.jobs.get(key);
}

// Timeline entries arrive twice (in the fetched run and replayed by the
// stream): an entry equal to one held within a second is the same one.
function addEntry(job, entry) {
  const tl = job.timeline;
  const same = (x) => x.status === entry.status && (x.secondary ?? null) === (entry.secondary ?? null)
    && Math.abs(x.time - entry.time) < 1;
  if (tl.some(same)) return;
  let i = tl.length;
  while (i > 0 && tl[i - 1].time > entry.time) i--;
  tl.splice(i, 0, entry);
  const last = tl[tl.length - 1];
  job.status = last.status;
  job.secondary = last.secondary ?? null;
}

function applyEvent(ev) {
  let d;
  try { d = JSON.parse(ev.data); } catch (e) { return; }
  if (!d || typeof d !== 'object' || !state.run) return;
  if (typeof d.time === 'number') state.maxSeen = Math.max(state.maxSeen, d.time);
  const job = d.job ? ensureJob(d.job) : null;
  if (ev.type === 'submitted' && job) {
    job.kind = d.kind ?? job.kind;
    job.name = d.name ?? job.name;
    job.attached = !!d.attached;
    if (job.submitted == null) job.submitted = d.time;
    addEntry(job, { time: d.time, status: 'Created', secondary: null });
    if (job.state === 'waiting') {
      job.state = 'running';
      loadRunsSoon();
      // its log may have been refused (404) and be retried with back-off: ask again now
      if (job.job === state.jobKey && state.logStream && !state.logQueue.length && !$('#log-pane').childElementCount) {
        state.logStream.stop();
        startLogs();
      }
    }
  } else if (ev.type === 'status' && job) {
    if (job.state === 'waiting') job.state = 'running';
    addEntry(job, { time: d.time, status: d.status, secondary: d.secondary ?? null });
  } else if (ev.type === 'notice') {
    const list = job ? (state.jobNotices.get(job.job) || []) : state.runNotices;
    list.push(d);
    if (list.length > 100) list.shift();
    if (job) state.jobNotices.set(job.job, list);
  } else if (ev.type === 'finished' && job) {
    const r = d.result || {};
    Object.assign(job, {
      state: r.outcome || 'Unknown', outcome: r.outcome ?? null, failure_reason: r.failure_reason ?? null,
      outputs: r.outputs || job.outputs, details: r.details || job.details, arn: r.arn ?? job.arn,
      name: r.name ?? job.name, kind: r.kind ?? job.kind, ended: job.ended ?? d.time,
    });
    const last = job.timeline[job.timeline.length - 1];
    if (r.status && (!last || last.status !== r.status)) addEntry(job, { time: d.time, status: r.status, secondary: null });
    loadRunSoon();
    loadRunsSoon();
    if (job.job === state.jobKey && job.kind === 'tuning') loadTrials();
  } else if (ev.type === 'run') {
    state.run.status = d.status;
    if (RUN_ENDED.has(d.status) && state.run.ended == null) state.run.ended = d.time;
    loadRunSoon();
    loadRunsSoon();
  }
  invalidate();
}

const isEnded = (job) => job.ended != null || !['waiting', 'running'].includes(job.state);
const runOver = () => !!state.run && RUN_ENDED.has(state.run.status);

/* ---------- one run: rendering ---------- */

// Coalesces the re-renders of a burst of events into one per frame.
function invalidate() {
  if (state.dirty) return;
  state.dirty = true;
  requestAnimationFrame(() => {
    state.dirty = false;
    if (!state.run) return;
    renderHeader();
    renderTimeline();
    renderJobInfo();
  });
}

function localCounts() {
  const counts = {};
  for (const j of state.jobs.values()) counts[j.state] = (counts[j.state] || 0) + 1;
  return counts;
}

// A button that asks for a second click within 5 s before it acts.
function stopButton(id, key, label, path) {
  const armed = state.armed === key && Date.now() < state.armedUntil;
  return el('button', {
    id, type: 'button', class: `btn danger${armed ? ' armed' : ''}`, 'data-armed': armed ? '1' : null,
    onclick: async (ev) => {
      if (!armed) {
        state.armed = key; state.armedUntil = Date.now() + 5000;
        setTimeout(invalidate, 5100);
        return invalidate();
      }
      state.armed = null;
      ev.currentTarget.disabled = true;
      try { await api(path, 'POST'); state.stopAsked.add(key); } catch (e) { showError(e); }
      loadRunSoon();
      invalidate();
    },
  }, armed ? 'Click again to stop' : label);
}

// Rebuilt only when what it shows changed (a rebuild under the pointer would
// swallow a click on the Stop button); the elapsed time is updated in place.
function renderHeader() {
  const r = state.run;
  const ended = runOver();
  const armed = state.armed === 'run' && Date.now() < state.armedUntil;
  const counts = state.jobs.size ? localCounts() : r.counts;
  const sig = JSON.stringify([r, state.live, armed, state.stopAsked.has('run'), counts, state.runNotices.length]);
  const box = $('#run-header');
  if (sig !== state.headerSig) {
    state.headerSig = sig;
    const liveText = { connecting: 'connecting…', live: 'live', retry: 'reconnecting…', ended: 'complete', error: 'no events' };
    box.dataset.runStatus = r.status;
    fill(box,
      el('div', { class: 'run-title' },
        el('h2', { id: 'run-title', title: r.run_id, text: r.run_id }),
        el('span', { class: `run-status r-${r.status}`, id: 'run-status', text: r.status }),
        el('span', { id: 'run-live', class: `live l-${ended && state.live !== 'retry' ? 'ended' : state.live}`,
          'data-live': state.live, text: ended && state.live !== 'retry' ? 'finished' : liveText[state.live] || '' }),
        el('span', { class: 'spacer' }),
        (r.stop_requested || state.stopAsked.has('run')) && !ended ? el('span', { class: 'tag warn', text: 'stop requested' }) : null,
        !ended && !r.stop_requested ? stopButton('run-stop', 'run', 'Stop run', `/v1/runs/${enc(r.run_id)}/stop`) : null),
      el('div', { id: 'run-meta', class: 'muted run-meta' }),
      countChips(counts));
    const notices = $('#run-notices');
    notices.hidden = !state.runNotices.length;
    notices.replaceChildren(...state.runNotices.slice(-5).map(noticeItem));
  }
  const [t0, t1] = timeSpan();
  const meta = [r.source && `from ${r.source}`, `created ${clock(r.created)}`,
    ended ? `ended ${clock(r.ended)}` : null, `${ended ? 'took' : r.status === 'pending' ? 'pending for' : 'running for'} ${dur(t1 - t0)}`,
    r.owner && `daemon ${r.owner}`, `${state.jobs.size || r.jobs_total} jobs`];
  setText($('#run-meta'), meta.filter(Boolean).join(' · '));
}

function noticeItem(n) {
  return el('li', { class: `notice n-${n.level}` }, el('span', { class: 'muted', text: clock(n.time) }), ' ', n.message || '');
}

// The shared axis: the run's first submission to its end (or now).
function timeSpan() {
  const r = state.run;
  let t0 = Infinity, t1 = -Infinity;
  for (const j of state.jobs.values()) {
    const first = j.submitted ?? (j.timeline[0] && j.timeline[0].time);
    if (first != null) t0 = Math.min(t0, first);
    if (j.ended != null) t1 = Math.max(t1, j.ended);
  }
  if (!isFinite(t0)) t0 = r.created;
  t1 = runOver() ? Math.max(t1, r.ended ?? -Infinity) : now();
  if (!isFinite(t1)) t1 = now();
  return [t0, Math.max(t1, t0 + 1)];
}

function segments(job, t0, t1) {
  const out = [];
  const end = job.ended ?? (runOver() ? t1 : now());
  const tl = job.timeline;
  const submitted = job.submitted ?? (tl[0] && tl[0].time);
  const waitEnd = submitted ?? end;
  if (waitEnd > t0) out.push({ phase: 'waiting', a: t0, b: waitEnd, label: 'waiting' });
  tl.forEach((e, i) => {
    const a = Math.max(e.time, t0), b = i + 1 < tl.length ? tl[i + 1].time : Math.max(end, e.time);
    const label = e.secondary ? `${e.status} · ${e.secondary}` : e.status;
    // the final status (Completed, Failed...) usually comes with the end: zero length, not drawn
    if (b > a) out.push({ phase: i === 0 && e.status === 'Created' ? 'created' : 'progress', a, b, label, key: e.secondary || e.status });
  });
  // the outcome: a cap that ends where the job ended
  if (job.ended != null) out.push({ phase: 'ended', a: job.ended, b: job.ended, label: STATE_LABEL[job.state] || job.state });
  return out;
}

const endClass = (job) => ({ Succeeded: 'ok', Failed: 'bad' }[job.state] || 'other');

function renderTimeline() {
  if (!state.run) return;
  const [t0, t1] = timeSpan();
  const span = t1 - t0;
  const pct = (t) => `${(((t - t0) / span) * 100).toFixed(3)}%`;
  const live = !runOver();

  // axis ticks: the first step that gives at most 8 of them
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  const step = steps.find((s) => span / s <= 8) || 86400 * Math.ceil(span / 86400 / 8);
  const ticks = [];
  const room = live ? 0.07 : 0.11;  // keep clear of the end label ("now" or a clock time)
  for (let s = 0; s <= span; s += step) if (s === 0 || span - s > span * room) ticks.push(s);
  const tickText = (s) => (s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${s % 60 ? pad(s % 60) + 's' : ''}`
    : `${Math.floor(s / 3600)}h${s % 3600 ? pad(Math.floor((s % 3600) / 60)) + 'm' : ''}`);
  $('#tl-axis').replaceChildren(
    el('div', { class: 'tl-label muted', text: `start ${clock(t0)}` }),
    el('div', { class: 'tl-track' },
      ...ticks.map((s) => el('span', { class: 'tick', style: { left: pct(t0 + s) }, text: tickText(s) })),
      el('span', { class: 'tick end', text: live ? 'now' : clock(t1) })));
  $('#tl-grid').replaceChildren(...ticks.map((s) => el('span', { class: 'gridline', style: { left: pct(t0 + s) } })));

  const rows = $('#tl-rows');
  const existing = new Map([...rows.children].map((r) => [r.dataset.job, r]));
  const seenPhases = new Map();
  let prev = null;
  for (const key of state.order) {
    const job = state.jobs.get(key);
    const row = existing.get(key) || makeRow(key);
    existing.delete(key);
    updateRow(row, job, segments(job, t0, t1), pct, seenPhases);
    const want = prev ? prev.nextSibling : rows.firstChild;
    if (want !== row) rows.insertBefore(row, want);
    prev = row;
  }
  for (const r of existing.values()) r.remove();
  $('#tl-empty').hidden = state.order.length > 0;
  renderLegend(seenPhases);
}

function makeRow(key) {
  const row = el('div', {
    class: 'tl-row', 'data-job': key, tabindex: 0, role: 'button',
    onclick: () => go(state.runId, key), onkeydown: (ev) => { if (ev.key === 'Enter') go(state.runId, key); },
  },
  el('div', { class: 'tl-label' },
    el('div', { class: 'job-name', title: key, text: key }),
    el('div', { class: 'job-sub' }, el('span', { class: 'job-kind' }), el('span', { class: 'job-status' }), el('span', { class: 'job-secondary' }))),
  el('div', { class: 'tl-track' }, el('div', { class: 'tl-bar' })));
  return row;
}

function setText(node, text) { if (node.textContent !== text) node.textContent = text; }

function updateRow(row, job, segs, pct, seenPhases) {
  row.dataset.state = job.state;
  row.classList.toggle('selected', job.job === state.jobKey);
  setText(row.querySelector('.job-kind'), job.kind || '');
  setText(row.querySelector('.job-status'), job.status || STATE_LABEL[job.state] || job.state);
  setText(row.querySelector('.job-secondary'), job.secondary && !isEnded(job) ? job.secondary : '');
  // Reuse the segment elements so a tooltip being read survives the per-second re-render.
  const bar = row.querySelector('.tl-bar');
  while (bar.children.length > segs.length) bar.lastChild.remove();
  while (bar.children.length < segs.length) bar.append(el('div'));
  segs.forEach((s, i) => {
    const n = bar.children[i];
    let cls = `seg seg-${s.phase}`;
    let colour = '';
    if (s.phase === 'ended') cls += ` end-${endClass(job)}`;
    if (s.phase === 'progress') {
      colour = PHASE_COLOUR[s.key] || `hsl(${200 + (hue(s.key) % 80)} 55% 62%)`;
      seenPhases.set(s.key, colour);
    }
    if (n.className !== cls) n.className = cls;
    n.style.background = colour;
    if (s.phase === 'ended') {
      n.style.left = `max(0px, calc(${pct(s.b)} - 6px))`;
      n.style.width = '6px';
    } else {
      n.style.left = pct(s.a);
      n.style.width = `max(2px, calc(${pct(s.b)} - ${pct(s.a)}))`;
    }
    const until = job.ended == null && i === segs.length - 1 && !runOver() ? 'now' : clock(s.b);
    const title = s.phase === 'ended'
      ? `${job.job} — ${s.label}, ended ${clock(s.b)}${job.submitted != null ? ` after ${dur(s.b - job.submitted)}` : ''}`
      : `${job.job} — ${s.label}\n${clock(s.a)} → ${until} (${dur(s.b - s.a)})`;
    if (n.title !== title) n.title = title;
  });
}

function renderLegend(seenPhases) {
  const sig = JSON.stringify([...seenPhases]);
  if (sig === state.legendSig) return;
  state.legendSig = sig;
  const item = (cls, text, colour) => el('span', { class: 'legend-item' },
    el('span', { class: `swatch ${cls}`, style: colour ? { background: colour } : null }), text);
  $('#tl-legend').replaceChildren(
    item('seg-waiting', 'waiting'), item('seg-created', 'created'),
    ...[...seenPhases].map(([k, c]) => item('', k, c)),
    item('end-ok', 'succeeded'), item('end-bad', 'failed'), item('end-other', 'stopped / other'));
}

/* ---------- job detail ---------- */

function selectJob(key) {
  if (key === state.jobKey) return;
  if (state.logStream) state.logStream.stop();
  clearTimeout(state.trialsTimer);
  Object.assign(state, { jobKey: key, jobSig: '', logStream: null, logQueue: [], logDropped: 0, logStick: true, trialsFor: null });
  $('#job-detail').hidden = !key;
  $('#trials-section').hidden = true;
  $('#trials-chart').replaceChildren();
  $('#log-pane').replaceChildren();
  $('#log-follow').hidden = true;
  for (const row of document.querySelectorAll('.tl-row')) row.classList.toggle('selected', row.dataset.job === key);
  if (!key) return;
  $('#job-info').replaceChildren(el('h2', { class: 'job-title', text: key }));
  startLogs();
  invalidate();
}

function kvTable(title, obj) {
  const entries = Object.entries(obj || {});
  const value = (k, v) => {
    if (v == null) return '–';
    if (typeof v === 'string' && /^https?:\/\//.test(v)) return el('a', { href: v, target: '_blank', rel: 'noopener noreferrer', text: v });
    if (typeof v === 'number' && /_seconds$/.test(k) && v >= 60) return `${fmtNum(v)} (${dur(v)})`;
    if (typeof v === 'object') return el('pre', { class: 'json', text: JSON.stringify(v, null, 2) });
    return typeof v === 'number' ? fmtNum(v) : String(v);
  };
  return el('div', { class: 'kv' }, el('h4', { text: title }),
    entries.length
      ? el('table', {}, el('tbody', {}, ...entries.map(([k, v]) => el('tr', {}, el('th', { text: k }), el('td', {}, value(k, v))))))
      : el('p', { class: 'muted', text: 'none' }));
}

function renderJobInfo() {
  const key = state.jobKey;
  const job = key && state.jobs.get(key);
  if (!job) return;
  const ended = isEnded(job);
  const stopKey = `job:${key}`;
  const notices = state.jobNotices.get(key) || [];
  const armed = state.armed === stopKey && Date.now() < state.armedUntil;
  const sig = JSON.stringify([key, job, notices.length, armed, state.stopAsked.has(stopKey)]);
  if (sig === state.jobSig) return;
  state.jobSig = sig;
  const linkTo = (url, text) => (url && /^https?:\/\//.test(url)
    ? el('a', { class: 'btn small', href: url, target: '_blank', rel: 'noopener noreferrer', text }) : null);
  const facts = {
    kind: job.kind, name: job.name, status: job.status, secondary: job.secondary, outcome: job.outcome,
    submitted: job.submitted != null ? clock(job.submitted) : null, ended: job.ended != null ? clock(job.ended) : null,
    duration: job.submitted != null && job.ended != null ? dur(job.ended - job.submitted) : null,
    attached: job.attached ? 'yes (followed an existing resource)' : null, arn: job.arn,
  };
  const needs = (job.needs || []).length
    ? el('div', { class: 'needs muted' }, 'needs ', ...job.needs.map((n) => el('button', {
      type: 'button', class: 'link', onclick: () => go(state.runId, n), text: n })))
    : null;
  fill($('#job-info'),
    el('div', { class: 'job-head' },
      el('h2', { class: 'job-title', title: key, text: key }),
      chip(job.state),
      job.kind ? el('span', { class: 'tag', text: job.kind }) : null,
      el('span', { class: 'spacer' }),
      linkTo(job.links && job.links.console, 'SageMaker console'),
      linkTo(job.links && job.links.logs, 'CloudWatch logs'),
      state.stopAsked.has(stopKey) && !ended ? el('span', { class: 'tag', text: 'stop requested' }) : null,
      job.state === 'running' && !state.stopAsked.has(stopKey)
        ? stopButton('stop-job', stopKey, 'Stop job', `/v1/runs/${enc(state.runId)}/jobs/${enc(key)}/stop`) : null),
    needs,
    job.failure_reason ? el('div', { id: 'job-failure', class: `failure${job.state === 'Failed' ? '' : ' soft'}` },
      el('strong', { text: job.state === 'Failed' ? 'Failed: ' : 'Reason: ' }), job.failure_reason) : null,
    el('div', { class: 'kv-grid' },
      kvTable('Job', Object.fromEntries(Object.entries(facts).filter(([, v]) => v != null && v !== ''))),
      kvTable('Outputs', job.outputs), kvTable('Details', job.details)),
    notices.length ? el('ul', { class: 'notices' }, ...notices.slice(-20).map(noticeItem)) : null);
  if (job.kind === 'tuning' && state.trialsFor !== key) {
    state.trialsFor = key;
    $('#trials-section').hidden = false;
    loadTrials();
  }
}

/* ---------- live log ---------- */

function startLogs() {
  const { runId, jobKey } = state;
  let ended = false;
  const status = { connecting: 'connecting…', live: 'following', retry: 'reconnecting…', ended: 'complete' };
  let refused = null;  // the last HTTP error, kept on screen while retrying
  state.logStream = follow(`/v1/runs/${enc(runId)}/jobs/${enc(jobKey)}/logs`, {
    onEvent: (ev) => {
      if (ev.type === 'end') { ended = true; return; }
      if (ev.type !== 'log') return;
      try { state.logQueue.push(JSON.parse(ev.data)); } catch (e) { return; }
      if (state.logQueue.length === 1) requestAnimationFrame(flushLogs);
    },
    onState: (s, code) => {
      if (state.jobKey !== jobKey) return;
      const job = state.jobs.get(jobKey);
      if (s === 'error') refused = code;
      else if (s === 'live') refused = null;
      $('#log-status').textContent = refused != null && s !== 'live'
        ? `no log yet (HTTP ${refused})${job && isEnded(job) ? '' : ', retrying'}` : status[s] || '';
    },
    // A finished job whose log answers 404 has none; a waiting one may get one.
    isDone: (code) => ended || (code === 404 && isEnded(state.jobs.get(jobKey) || { state: 'Unknown' })),
  });
}

const stripAnsi = (s) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');

// Appends the queued lines in one go per frame; trims the oldest past LOG_CAP.
function flushLogs() {
  const pane = $('#log-pane');
  const lines = state.logQueue.splice(0);
  if (!lines.length) return;
  const frag = document.createDocumentFragment();
  for (const d of lines) {
    const inst = d.instance || d.stream || '';
    const ts = d.timestamp ? new Date(d.timestamp) : null;
    frag.append(el('div', { class: 'log-line', 'data-instance': inst },
      el('span', { class: 'log-ts', text: ts ? `${pad(ts.getHours())}:${pad(ts.getMinutes())}:${pad(ts.getSeconds())}` : '' }),
      el('span', { class: 'log-inst', title: d.stream || inst, style: { color: `hsl(${hue(inst)} 55% 35%)` }, text: inst }),
      el('span', { class: 'log-msg', text: stripAnsi(String(d.message ?? '')).replace(/\s+$/, '') })));
  }
  pane.append(frag);
  let extra = pane.childElementCount - LOG_CAP;
  state.logDropped += Math.max(0, extra);
  while (extra-- > 0) pane.firstElementChild.remove();
  pane.dataset.dropped = String(state.logDropped);
  if (state.logStick) pane.scrollTop = pane.scrollHeight;
}

/* ---------- tuning trials chart ---------- */

async function loadTrials() {
  clearTimeout(state.trialsTimer);
  const { runId, jobKey } = state;
  const before = state.jobs.get(jobKey);
  const wasEnded = before ? isEnded(before) : false;
  try {
    const body = await api(`/v1/runs/${enc(runId)}/jobs/${enc(jobKey)}/trials`);
    if (state.jobKey !== jobKey || state.runId !== runId) return;
    renderTrials(body);
  } catch (e) {
    if (state.jobKey !== jobKey) return;
    $('#trials-chart').replaceChildren(el('p', { class: 'muted', text: `Trials unavailable: ${e.message}` }));
  }
  // Poll while the job runs, and once more after it ended (that answer is final).
  if (!wasEnded && state.jobKey === jobKey) state.trialsTimer = setTimeout(loadTrials, TRIALS_EVERY);
}

function niceTicks(lo, hi, count) {
  const raw = (hi - lo) / count, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function renderTrials(body) {
  const box = $('#trials-chart');
  const objective = body.objective || null;
  const all = body.trials || [];
  const pts = all.filter((t) => typeof t.value === 'number' && isFinite(t.value))
    .sort((a, b) => (a.ended ?? Infinity) - (b.ended ?? Infinity));
  box.dataset.trials = String(pts.length);
  if (!pts.length) {
    box.replaceChildren(el('p', { class: 'muted', text: all.length ? `${all.length} trials, none with a value yet.` : 'No trials yet.' }));
    return;
  }
  const W = 640, H = 220, m = { l: 66, r: 16, t: 14, b: 34 };
  const values = pts.map((t) => t.value);
  let lo = Math.min(...values), hi = Math.max(...values);
  const padY = hi > lo ? (hi - lo) * 0.08 : Math.abs(hi) * 0.1 || 1;
  lo -= padY; hi += padY;
  const x = (i) => m.l + ((i + 0.5) * (W - m.l - m.r)) / pts.length;
  const y = (v) => m.t + ((hi - v) / (hi - lo)) * (H - m.t - m.b);
  const maximize = !objective || objective.type !== 'Minimize';
  const better = (a, b) => (maximize ? a > b : a < b);
  let best = 0;
  pts.forEach((t, i) => { if (better(t.value, pts[best].value)) best = i; });

  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'trials-svg', role: 'img',
    'aria-label': `${objective ? objective.name : 'objective'} of ${pts.length} trials` });
  for (const v of niceTicks(lo, hi, 5)) {
    chart.append(svg('line', { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), class: 'grid' }),
      svg('text', { x: m.l - 6, y: y(v) + 4, class: 'tick', 'text-anchor': 'end' }, fmtNum(v)));
  }
  chart.append(
    svg('line', { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b, class: 'axis' }),
    svg('line', { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, class: 'axis' }),
    svg('text', { x: 14, y: (m.t + H - m.b) / 2, class: 'label', 'text-anchor': 'middle',
      transform: `rotate(-90 14 ${(m.t + H - m.b) / 2})` }, objective ? objective.name : 'objective'),
    svg('text', { x: (m.l + W - m.r) / 2, y: H - 8, class: 'label', 'text-anchor': 'middle' }, 'trials, in order of end time'));
  // best so far, as a step line
  const half = (W - m.l - m.r) / pts.length / 2;
  let run = pts[0].value;
  const path = pts.map((t, i) => {
    if (better(t.value, run)) run = t.value;
    return `${i ? 'V' : `M${x(0) - half},`}${y(run)} H${x(i) + half}`;
  }).join(' ');
  chart.append(svg('path', { d: path, class: 'best-line' }));
  pts.forEach((t, i) => {
    const dot = svg('circle', { cx: x(i), cy: y(t.value), r: i === best ? 6 : 3.5,
      class: `trial${i === best && objective ? ' best' : ''}`, 'data-trial': t.name });
    dot.append(svg('title', {}, `${t.name}\n${objective ? objective.name : 'value'} = ${fmtNum(t.value)}\n${t.status}${t.ended ? ` · ended ${clock(t.ended)}` : ''}`));
    chart.append(dot);
  });
  const b = pts[best];
  const missing = all.length - pts.length;
  box.replaceChildren(chart, el('p', { class: 'muted chart-note', text:
    `${all.length} trials${missing ? ` (${missing} without a value)` : ''}`
    + (objective ? ` · best ${b.name}: ${objective.name} = ${fmtNum(b.value)} (${objective.type})` : '') }));
}

/* ---------- start ---------- */

function start() {
  takeToken();
  $('#runs-more').addEventListener('click', loadOlderRuns);
  const pane = $('#log-pane');
  // Follow the log's end unless the person scrolled up to read.
  pane.addEventListener('scroll', () => {
    state.logStick = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 24;
    $('#log-follow').hidden = state.logStick;
  });
  $('#log-follow').addEventListener('click', () => { state.logStick = true; pane.scrollTop = pane.scrollHeight; });
  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) loadRuns(); });
  route();
  loadRuns();
  setInterval(() => { loadRuns(); if (state.runId && !state.run) connectRun(); }, RUNS_EVERY);
  // Bars of running jobs grow with time.
  setInterval(() => {
    if (state.run && !runOver() && !document.hidden) { renderTimeline(); renderHeader(); renderJobInfo(); }
  }, 1000);
}

start();
