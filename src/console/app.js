// The livegate console: a face on the signed management API. Every call is
// signed here (t + md5(key + t)) with the key kept in session storage; the key
// itself is never sent. Data is written into the page as text, never as HTML.
'use strict';

// ---- MD5 (RFC 1321), for the API's signature; written for this console. ----
function md5(text) {
  const bytes = new TextEncoder().encode(text);
  const n = ((bytes.length + 8) >>> 6) + 1;
  const words = new Uint32Array(n * 16);
  for (let i = 0; i < bytes.length; i++) words[i >> 2] |= bytes[i] << ((i % 4) * 8);
  words[bytes.length >> 2] |= 0x80 << ((bytes.length % 4) * 8);
  words[n * 16 - 2] = bytes.length * 8;
  const S = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
  const K = new Uint32Array(64);
  for (let i = 0; i < 64; i++) K[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32);
  let a0 = 0x67452301, b0 = 0xefcdab89, c0 = 0x98badcfe, d0 = 0x10325476;
  for (let off = 0; off < words.length; off += 16) {
    let a = a0, b = b0, c = c0, d = d0;
    for (let i = 0; i < 64; i++) {
      let f, g;
      const r = i >> 4;
      if (r === 0) { f = (b & c) | (~b & d); g = i; }
      else if (r === 1) { f = (d & b) | (~d & c); g = (5 * i + 1) % 16; }
      else if (r === 2) { f = b ^ c ^ d; g = (3 * i + 5) % 16; }
      else { f = c ^ (b | ~d); g = (7 * i) % 16; }
      const s = S[r * 4 + (i % 4)];
      const x = (a + f + K[i] + words[off + g]) >>> 0;
      a = d; d = c; c = b;
      b = (b + ((x << s) | (x >>> (32 - s)))) >>> 0;
    }
    a0 = (a0 + a) >>> 0; b0 = (b0 + b) >>> 0; c0 = (c0 + c) >>> 0; d0 = (d0 + d) >>> 0;
  }
  return [a0, b0, c0, d0].map((w) => {
    let h = '';
    for (let i = 0; i < 4; i++) h += ((w >>> (i * 8)) & 0xff).toString(16).padStart(2, '0');
    return h;
  }).join('');
}

// ---- The API ----
const KEY = 'livegate.admin.key';
class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  toString() { return this.code ? `${this.code}: ${this.message}` : this.message; }
}

async function api(method, path, params = {}, body) {
  const key = sessionStorage.getItem(KEY) || '';
  const t = Math.floor(Date.now() / 1000) + 300;
  const q = new URLSearchParams(params);
  q.set('t', String(t));
  q.set('sign', md5(key + t));
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['content-type'] = 'application/json';
  }
  let resp;
  try {
    resp = await fetch(`${path}?${q}`, init);
  } catch (e) {
    throw new ApiError(0, 'Unreachable', `the edge did not answer: ${e.message}`);
  }
  let data = null;
  try { data = await resp.json(); } catch (_) { /* not JSON */ }
  if (!resp.ok) {
    throw new ApiError(resp.status, data && data.code, (data && data.message) || `HTTP ${resp.status}`);
  }
  return data;
}

// ---- Small DOM helpers: text only ----
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const $ = (id) => document.getElementById(id);
function notice(text, ms = 6000) {
  const n = $('notice');
  n.textContent = text;
  n.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { n.hidden = true; }, ms);
}
function when(unix) {
  if (!unix) return '-';
  return new Date(unix * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}
function bytes(n) {
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}
function rate(bps) {
  if (bps === undefined || bps === null) return '-';
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(2)} Mbit/s`;
  return `${(bps / 1e3).toFixed(0)} kbit/s`;
}
// A new key as the scheme spells one: Akamai's are hex (32 digits, as its
// property manager makes them), JWT secrets 32 characters, the others 24.
// CloudFront keys are public keys the backend makes: none is invented here.
function randomKey(scheme) {
  const abc = scheme === 'akamai_token' ? '0123456789abcdef'
    : 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const n = scheme === 'akamai_token' || scheme === 'jwt' ? 32 : 24;
  const r = crypto.getRandomValues(new Uint8Array(n));
  return Array.from(r, (b) => abc[b % abc.length]).join('');
}
function streamId(s) { return `${s.domain}\u0000${s.app}\u0000${s.stream}`; }

// A two-step confirmation inside the page: what will happen, then Confirm.
function confirmBar(text, onConfirm) {
  const bar = el('div', { class: 'confirm', role: 'alertdialog' },
    el('span', {}, text),
    el('button', { class: 'danger', 'data-confirm': '', onclick: async () => { bar.remove(); await onConfirm(); } }, 'Confirm'),
    el('button', { onclick: () => bar.remove() }, 'Cancel'));
  return bar;
}

// ---- History kept in the page: a bounded ring per stream ----
const HISTORY = 150; // samples (5 minutes at one every 2 s)
const history = new Map(); // streamId -> [{t, bytes, connections, bps}]
let lastOnline = [];

async function poll() {
  const data = await api('GET', '/v1/streams/online', { page_size: '1000' });
  const now = Date.now() / 1000;
  const seen = new Set();
  for (const s of data.streams) {
    const id = streamId(s);
    seen.add(id);
    const ring = history.get(id) || [];
    const prev = ring[ring.length - 1];
    let bps = null;
    if (prev && now > prev.t && s.bytes >= prev.bytes) bps = ((s.bytes - prev.bytes) * 8) / (now - prev.t);
    ring.push({ t: now, bytes: s.bytes, connections: s.connections, bps });
    while (ring.length > HISTORY) ring.shift();
    history.set(id, ring);
    s.bps = bps === null && prev ? prev.bps : bps;
  }
  for (const id of [...history.keys()]) if (!seen.has(id)) history.delete(id);
  lastOnline = data.streams;
  return data;
}

// ---- Pages ----
const pages = {};
let timer = null;
let sort = { key: 'connections', up: false };
let filter = '';

function page(title, ...content) {
  const p = $('page');
  p.replaceChildren(el('h1', {}, title), ...content);
  p.hidden = false;
}

function sortable(columns, rows, render, onSort) {
  const head = el('tr', {}, columns.map(([key, label, num]) => el('th', {
    class: [num ? 'num' : '', sort.key === key ? 'sorted' : '', sort.key === key && sort.up ? 'up' : ''].join(' ').trim(),
    onclick: () => { sort = { key, up: sort.key === key ? !sort.up : false }; onSort(); },
  }, label)));
  const sorted = [...rows].sort((a, b) => {
    const x = a[sort.key], y = b[sort.key];
    const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
    return sort.up ? c : -c;
  });
  return el('table', {}, el('thead', {}, head), el('tbody', {}, sorted.map(render)));
}

pages.live = async () => {
  const table = el('div', { id: 'live-table' });
  const status = el('span', { class: 'muted' });
  const input = el('input', { id: 'filter', placeholder: 'filter: domain, app, stream…', value: filter,
    oninput: (e) => { filter = e.target.value; draw(); } });
  page('Live streams', el('div', { class: 'bar' }, input, status), table);
  function draw() {
    const f = filter.toLowerCase();
    const rows = lastOnline.filter((s) => !f || `${s.domain} ${s.app} ${s.stream} ${s.scene} ${s.protocol}`.toLowerCase().includes(f));
    const cols = [['domain', 'Domain'], ['app', 'App'], ['stream', 'Stream'], ['scene', 'Scene'], ['protocol', 'Protocol'],
      ['connections', 'Connections', true], ['bps', 'Bitrate', true], ['since', 'Since']];
    table.replaceChildren(rows.length === 0
      ? el('p', { class: 'muted', id: 'no-streams' }, 'No stream has an open connection on this edge.')
      : sortable(cols, rows, (s) => el('tr', {
        class: 'link', 'data-stream': `${s.domain}/${s.app}/${s.stream}`,
        onclick: () => { location.hash = `#/stream/${encodeURIComponent(s.domain)}/${encodeURIComponent(s.app)}/${encodeURIComponent(s.stream)}`; },
      }, el('td', {}, s.domain), el('td', {}, s.app), el('td', {}, s.stream), el('td', {}, s.scene),
      el('td', {}, s.protocol), el('td', { class: 'num', 'data-connections': '' }, s.connections),
      el('td', { class: 'num' }, rate(s.bps)), el('td', {}, when(s.since))), draw));
  }
  async function tick() {
    try {
      const d = await poll();
      status.textContent = `${d.total} stream${d.total === 1 ? '' : 's'} · refreshed ${new Date().toLocaleTimeString()}`;
      status.className = 'muted';
      draw();
    } catch (e) { status.textContent = String(e); status.className = 'error'; }
  }
  await tick();
  timer = setInterval(tick, 2000);
};

function spark(canvas, values, color) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 260, h = canvas.clientHeight || 48;
  canvas.width = w * dpr; canvas.height = h * dpr;
  const g = canvas.getContext('2d');
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  // The first sample of a stream has no rate yet: start at the first that has.
  const first = values.findIndex((x) => x !== null && x !== undefined);
  const v = first < 0 ? [] : values.slice(first).map((x) => x || 0);
  if (v.length < 2) return;
  const max = Math.max(...v, 1);
  // Right-aligned: the newest sample at the right edge; at least 30 slots wide.
  const span = Math.max(v.length, 30) - 1;
  g.strokeStyle = color; g.lineWidth = 1.5; g.beginPath();
  v.forEach((x, i) => {
    const px = w - ((v.length - 1 - i) / span) * w;
    const py = h - 3 - (x / max) * (h - 6);
    if (i === 0) g.moveTo(px, py); else g.lineTo(px, py);
  });
  g.stroke();
}

pages.stream = async (domain, app, stream) => {
  const id = `${domain}\u0000${app}\u0000${stream}`;
  const cards = el('div', { class: 'cards' });
  const conns = el('div', { id: 'connections' });
  const actions = el('div', { id: 'actions' });
  const status = el('p', { class: 'muted', id: 'stream-status' });
  const until = el('input', { id: 'forbid-minutes', type: 'number', min: '1', placeholder: 'for minutes (empty: until resumed)' });
  const reason = el('input', { id: 'forbid-reason', placeholder: 'reason (optional)' });
  const body = { domain, app, stream };
  const act = (label, cls, text, call) => el('button', { class: cls, id: `act-${label.toLowerCase()}`, onclick: () => {
    actions.querySelectorAll('.confirm').forEach((c) => c.remove());
    actions.append(confirmBar(text(), async () => {
      try { await call(); notice(`${label}: done`); await tick(); } catch (e) { notice(`${label}: ${e}`); }
    }));
  } }, label);
  actions.append(el('div', { class: 'bar' },
    act('Forbid', 'danger', () => `Forbid ${app}/${stream} on ${domain}${until.value ? ` for ${until.value} min` : ''}: every connection is cut and new ones are refused.`,
      () => api('POST', '/v1/streams/forbid', {}, { ...body, ...(until.value ? { until: Math.floor(Date.now() / 1000) + 60 * Number(until.value) } : {}), ...(reason.value ? { reason: reason.value } : {}) })),
    until, reason,
    act('Resume', '', () => `Resume ${app}/${stream}: new connections are admitted again.`,
      () => api('POST', '/v1/streams/resume', {}, body)),
    act('Drop', 'danger', () => `Drop every connection of ${app}/${stream} now (no forbid: players may reconnect).`,
      () => api('POST', '/v1/streams/drop', {}, body))));
  const bitrate = el('canvas', { class: 'spark', id: 'spark-bitrate' });
  const viewers = el('canvas', { class: 'spark', id: 'spark-viewers' });
  const nowRate = el('div', { class: 'value' }), nowConns = el('div', { class: 'value' });
  cards.append(el('div', { class: 'card' }, el('div', { class: 'label' }, 'Bitrate (last 5 minutes)'), nowRate, bitrate),
    el('div', { class: 'card' }, el('div', { class: 'label' }, 'Connections (last 5 minutes)'), nowConns, viewers));
  page(`${domain} · ${app}/${stream}`, cards, actions, status, el('h2', {}, 'Connections'), conns);
  async function tick() {
    try { await poll(); } catch (_) { /* shown below */ }
    const ring = history.get(id) || [];
    spark(bitrate, ring.map((r) => r.bps), '#0a66c2');
    spark(viewers, ring.map((r) => r.connections), '#067647');
    const last = ring[ring.length - 1];
    nowRate.textContent = last ? rate(last.bps) : '-';
    nowConns.textContent = last ? String(last.connections) : '0';
    try {
      const d = await api('GET', '/v1/streams/connections', body);
      status.textContent = `${d.total} open connection${d.total === 1 ? '' : 's'}`;
      conns.replaceChildren(el('table', {},
        el('thead', {}, el('tr', {}, ['Client IP', 'Scene', 'Protocol', 'Since', 'Bytes', 'Edge'].map((h) => el('th', {}, h)))),
        el('tbody', {}, d.connections.map((c) => el('tr', { 'data-connection': '' }, el('td', { class: 'mono' }, c.client_ip), el('td', {}, c.scene),
          el('td', {}, c.protocol), el('td', {}, when(c.since)), el('td', { class: 'num' }, bytes(c.bytes)), el('td', {}, c.edge))))));
    } catch (e) {
      status.textContent = e.code === 'StreamNotOnline' ? 'Not online on this edge.' : String(e);
      conns.replaceChildren();
    }
  }
  await tick();
  timer = setInterval(tick, 2000);
};

pages.forbidden = async () => {
  const list = el('div', { id: 'forbidden-list' });
  page('Forbidden streams', list);
  async function draw() {
    try {
      const d = await api('GET', '/v1/streams/forbidden');
      list.replaceChildren(d.forbidden.length === 0 ? el('p', { class: 'muted', id: 'none-forbidden' }, 'Nothing is forbidden.')
        : el('table', {}, el('thead', {}, el('tr', {}, ['Domain', 'App', 'Stream', 'Until', 'Reason', ''].map((h) => el('th', {}, h)))),
          el('tbody', {}, d.forbidden.map((f) => el('tr', { 'data-forbid': `${f.domain}/${f.app}/${f.stream}` },
            el('td', {}, f.domain), el('td', {}, f.app), el('td', {}, f.stream), el('td', {}, f.until ? when(f.until) : 'until resumed'),
            el('td', {}, f.reason || ''), el('td', {}, el('button', { class: 'resume', onclick: async () => {
              try { await api('POST', '/v1/streams/resume', {}, { domain: f.domain, app: f.app, stream: f.stream }); notice('Resumed'); await draw(); } catch (e) { notice(String(e)); }
            } }, 'Resume')))))));
    } catch (e) { list.replaceChildren(el('p', { class: 'error' }, String(e))); }
  }
  await draw();
};

let domains = [];
function domainPicker(onPick, current) {
  const sel = el('select', { id: 'domain', onchange: (e) => onPick(e.target.value) },
    domains.map((d) => el('option', { value: d, selected: d === current }, d)));
  return el('label', {}, 'Domain ', sel);
}
let chosen = null;

pages.rules = async () => {
  chosen = chosen || domains[0];
  const out = el('div', { id: 'rules' });
  const error = el('p', { class: 'error', id: 'rules-error', role: 'alert' });
  page('Rules', el('div', { class: 'bar' }, domainPicker((d) => { chosen = d; draw(); }, chosen)), error, out);
  const patch = async (rule, change, done) => {
    error.textContent = '';
    try {
      await api('PATCH', '/v1/auth/rules', {}, { domain: chosen, app: rule.app, scene: rule.scene, ...change });
      notice(done, 15000);
      await draw();
    } catch (e) { error.textContent = String(e); }
  };
  async function draw() {
    try {
      const d = await api('GET', '/v1/auth/rules', { domain: chosen });
      out.replaceChildren(el('table', {},
        el('thead', {}, el('tr', {}, ['App', 'Scene', 'Scheme', 'Enabled', 'Keys', 'Source', ''].map((h) => el('th', {}, h)))),
        el('tbody', {}, d.rules.map((r) => {
          const pem = r.scheme === 'cloudfront';
          const add = pem
            ? el('textarea', { class: 'add-key', rows: '3', cols: '40', placeholder: 'KEYID:-----BEGIN PUBLIC KEY-----…' })
            : el('input', { class: 'add-key', placeholder: 'new key (empty: random)', size: '22' });
          return el('tr', { 'data-rule': `${r.app}/${r.scene}` },
            el('td', {}, r.app), el('td', {}, r.scene), el('td', {}, r.scheme || '-'),
            el('td', { class: r.enabled ? 'ok' : 'error' }, r.enabled ? 'yes' : 'no'),
            el('td', {}, (r.keys || []).map((k, i) => el('div', { class: 'key' }, el('span', { class: 'mono' }, k), ' ',
              pem ? '' : el('button', { class: 'rotate', title: 'replace this key with a new one', onclick: () => {
                const key = randomKey(r.scheme);
                patch(r, { add_key: key, remove_key: i }, `New key (shown once, copy it now): ${key}`).then(() => { window.lastKey = key; });
              } }, 'Rotate'), ' ',
              el('button', { class: 'delete-key danger', onclick: () => patch(r, { remove_key: i }, 'Key deleted') }, 'Delete')))),
            el('td', {}, r.source),
            el('td', {}, el('div', { class: 'bar' }, add,
              el('button', { class: 'add', onclick: () => {
                if (pem && !add.value.trim()) { error.textContent = 'Paste the key id and its PEM public key.'; return; }
                const key = add.value.trim() || randomKey(r.scheme);
                patch(r, { add_key: key }, pem ? 'Public key added' : `Key added first, it signs from now on: ${key}`);
              } }, 'Add key'),
              el('button', { class: 'toggle', onclick: () => patch(r, { enabled: !r.enabled }, r.enabled ? 'Disabled' : 'Enabled') },
                r.enabled ? 'Disable' : 'Enable'))));
        }))));
    } catch (e) { error.textContent = String(e); }
  }
  await draw();
};

pages.access = async () => {
  chosen = chosen || domains[0];
  const out = el('div', { id: 'access' });
  page('Access lists', el('div', { class: 'bar' }, domainPicker((d) => { chosen = d; draw(); }, chosen)), out);
  async function draw() {
    try {
      const d = await api('GET', '/v1/access', { domain: chosen });
      out.replaceChildren(el('p', { class: 'muted' }, `From: ${d.source || '-'}`), el('pre', {}, JSON.stringify(d.access ?? d, null, 2)));
    } catch (e) { out.replaceChildren(el('p', { class: 'error' }, String(e))); }
  }
  await draw();
};

pages.fleet = async () => {
  const out = el('div', { id: 'fleet' });
  page('Fleet', out);
  async function tick() {
    try {
      const s = await api('GET', '/v1/state');
      const row = (k, v, cls) => el('tr', {}, el('th', {}, k), el('td', { class: cls || '' }, v));
      out.replaceChildren(el('table', {}, el('tbody', {},
        row('Edge', s.edge), row('State backend', s.backend),
        s.backend === 'etcd' ? row('etcd endpoints', (s.endpoints || []).join(', ')) : row('State directory', s.state_dir),
        s.backend === 'etcd' ? row('Prefix', s.prefix) : null,
        row('Revision', s.revision),
        row('Watch', s.backend === 'etcd' ? (s.watch ? 'up' : 'down') : 'not in a fleet', s.backend === 'etcd' ? (s.watch ? 'ok' : 'error') : 'muted'),
        row('Domains', (s.domains || []).join(', ')))),
      s.backend === 'etcd' ? el('h2', {}, 'Edges of the fleet') : null,
      s.edges ? el('table', { id: 'edges' },
        el('thead', {}, el('tr', {}, ['Edge', 'Up since'].map((h) => el('th', {}, h)))),
        el('tbody', {}, s.edges.map((e) => el('tr', { 'data-edge': e.edge },
          el('td', {}, e.edge === s.edge ? `${e.edge} (this edge)` : e.edge), el('td', {}, when(e.since))))))
        : s.backend === 'etcd' ? el('p', { class: 'error' }, s.edges_error || 'unknown') : null,
      el('p', { class: 'muted' }, 'Every edge of a fleet shows the same revision once it applied the same changes: '
        + 'open the console of each, or compare livegate_state_revision on the dashboard.'));
    } catch (e) { out.replaceChildren(el('p', { class: 'error' }, String(e))); }
  }
  await tick();
  timer = setInterval(tick, 3000);
};

// ---- Routing and login ----
async function route() {
  clearInterval(timer);
  timer = null;
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const name = pages[parts[0]] ? parts[0] : 'live';
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('on', a.getAttribute('href') === `#/${name === 'stream' ? 'live' : name}`);
  await pages[name](...parts.slice(1));
}

async function signIn() {
  try {
    const s = await api('GET', '/v1/state');
    domains = s.domains || [];
    $('edge').textContent = `edge ${s.edge}`;
    $('login').hidden = true;
    $('nav').hidden = false;
    await route();
    return true;
  } catch (e) {
    sessionStorage.removeItem(KEY);
    $('nav').hidden = true;
    $('page').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = e.code === 'SignInvalid'
      ? 'Wrong key: the edge refused the signature made with it (SignInvalid).'
      : `The edge refused: ${e}`;
    return false;
  }
}

window.addEventListener('hashchange', () => { if (sessionStorage.getItem(KEY)) route(); });
document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $('key').value);
    $('key').value = '';
    signIn();
  });
  $('logout').addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    location.hash = '';
    location.reload();
  });
  if (sessionStorage.getItem(KEY)) signIn();
  else $('login').hidden = false;
});
