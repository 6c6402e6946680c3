// X-Ray web UI: one file, no dependencies, no build step.
//
// Invariants this file keeps (the server's CSP enforces most of them):
// - Captured data (names, inputs, outputs, reasons, ids) is hostile. It only ever
//   reaches the page as `textContent`/text nodes or attribute *values* set with
//   `setAttribute`; nothing here parses HTML (no innerHTML & co., no eval).
// - Links are built only by `path()`, which encodes every segment, and `h()`
//   refuses any href/action/src that is not a same-origin absolute path, and any
//   `on*`/`style` attribute.
// - Positions and widths are set through CSSOM (`el.style.left = …`), which
//   `style-src 'self'` allows; no style attributes in markup.
'use strict';

(function () {
  const ROW_H = 24;          // waterfall row height, px (must match app.css)
  const OVERSCAN = 12;       // rows rendered above/below the viewport
  const FULL_LOAD_MAX = 5000; // executions up to this many steps load whole
  const FIRST_LIMIT = 200;   // steps asked for with the execution header
  const ROOT_PAGE = 500;     // top-level steps per page in lazy mode
  const CHILD_PAGE = 1000;   // children per page in lazy mode
  const DECISIONS_PAGE = 500; // decision rows rendered before "show more"
  const STRING_MAX = 200;    // JSON strings longer than this are truncated
  const ARRAY_PAGE = 100;    // JSON array items shown before "show more"
  const KNOWN_STATUSES = new Set(['running', 'ok', 'error', 'panicked', 'cancelled']);
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // ---------------------------------------------------------------- DOM helpers

  function isSafePath(v) {
    return typeof v === 'string' && v.startsWith('/') && !v.startsWith('//') && !v.startsWith('/\\');
  }

  function applyAttrs(el, attrs) {
    if (!attrs) return;
    for (const key of Object.keys(attrs)) {
      const v = attrs[key];
      if (v === null || v === undefined || v === false) continue;
      if (key === 'on') {
        for (const ev of Object.keys(v)) el.addEventListener(ev, v[ev]);
        continue;
      }
      const name = key.toLowerCase();
      if (name.startsWith('on') || name === 'style' || name === 'srcdoc') continue;
      if ((name === 'href' || name === 'action' || name === 'src' || name === 'formaction') && !isSafePath(v)) continue;
      el.setAttribute(key, v === true ? '' : String(v));
    }
  }

  function appendChildren(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /** Creates an HTML element; attributes via setAttribute only, children as nodes or text. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    applyAttrs(el, attrs);
    return appendChildren(el, children);
  }

  /** Same as `h` for SVG elements. */
  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    applyAttrs(el, attrs);
    return appendChildren(el, children);
  }

  /** `/seg/seg/…` with every segment percent-encoded. */
  function path(...segments) {
    return '/' + segments.map((s) => encodeURIComponent(String(s))).join('/');
  }

  const enc = encodeURIComponent;

  function qs(params) {
    const u = new URLSearchParams();
    for (const k of Object.keys(params)) {
      const v = params[k];
      if (v !== null && v !== undefined && String(v).trim() !== '') u.set(k, String(v).trim());
    }
    const s = u.toString();
    return s ? '?' + s : '';
  }

  function link(href, attrs, ...children) {
    return h('a', Object.assign({ href }, attrs || {}), ...children);
  }

  // ------------------------------------------------------------------ formatting

  function statusClass(s) {
    return KNOWN_STATUSES.has(s) ? s : 'neutral';
  }

  /** A status pill; `look` is the step status whose colours it takes (by default its own). */
  function badge(status, look) {
    const cls = look || statusClass(status);
    return h('span', { class: 'badge status-' + cls, 'data-status': String(status) },
      h('span', { class: 'dot', 'aria-hidden': 'true' }), String(status));
  }

  // A reasoning job's status, in the colours of the step status it reads like.
  const JOB_LOOK = { completed: 'ok', failed: 'error', pending: 'running', processing: 'running' };

  function jobBadge(status) {
    return badge(status, Object.prototype.hasOwnProperty.call(JOB_LOOK, status) ? JOB_LOOK[status] : 'neutral');
  }

  function verdictOf(accepted) {
    return accepted === true ? 'accepted' : accepted === false ? 'rejected' : 'unknown';
  }

  function verdictBadge(accepted) {
    const v = verdictOf(accepted);
    return h('span', { class: 'verdict verdict-' + v }, v === 'unknown' ? '—' : v);
  }

  function fmtDur(us) {
    if (us === null || us === undefined || !isFinite(us)) return '—';
    const a = Math.abs(us);
    if (a < 1000) return Math.round(us) + ' µs';
    if (a < 1e6) return trim(us / 1000, a < 1e4 ? 2 : a < 1e5 ? 1 : 0) + ' ms';
    if (a < 60e6) return trim(us / 1e6, a < 1e7 ? 2 : 1) + ' s';
    if (a < 3600e6) {
      const m = Math.floor(a / 60e6);
      return m + ' m ' + Math.round((a - m * 60e6) / 1e6) + ' s';
    }
    const hr = Math.floor(a / 3600e6);
    return hr + ' h ' + Math.round((a - hr * 3600e6) / 60e6) + ' m';
  }

  function trim(x, digits) {
    return String(parseFloat(x.toFixed(digits)));
  }

  function fmtTime(us) {
    if (us === null || us === undefined) return '—';
    const d = new Date(us / 1000);
    if (isNaN(d.getTime())) return '—';
    return d.toLocaleString(undefined, {
      year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
    });
  }

  function isoTime(us) {
    const d = new Date(us / 1000);
    return isNaN(d.getTime()) ? '' : d.toISOString();
  }

  function timeEl(us) {
    return h('time', { datetime: us == null ? null : isoTime(us), title: us == null ? null : isoTime(us) }, fmtTime(us));
  }

  function fmtScore(x) {
    if (x === null || x === undefined) return '—';
    if (typeof x !== 'number') return String(x);
    return Number.isInteger(x) ? String(x) : String(parseFloat(x.toPrecision(4)));
  }

  function fmtInt(n) {
    return typeof n === 'number' ? n.toLocaleString() : n == null ? '—' : String(n);
  }

  /**
   * US dollars to a hundredth of a cent, or to two significant digits below that (a
   * small model's call costs millionths: `$0.000046`, never a `$0.0000` that reads as
   * free); "—" when there is no cost (no price). As the CLI prints it.
   */
  function fmtCost(row) {
    const x = row.cost_usd;
    if (typeof x !== 'number' || !isFinite(x)) return '—';
    const small = x > 0 && x < 1e-4;
    return '$' + x.toFixed(small ? Math.min(20, Math.ceil(-Math.log10(x)) + 1) : 4);
  }

  function nowUs() {
    return Date.now() * 1000;
  }

  // ------------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  let leavingForLogin = false;
  function toLogin() {
    if (leavingForLogin) return;
    leavingForLogin = true;
    location.assign('/login?next=' + enc(location.pathname + location.search));
  }

  async function api(url) {
    let res;
    try {
      res = await fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
    } catch (e) {
      throw new ApiError(0, 'Network error: ' + (e && e.message ? e.message : String(e)));
    }
    if (res.status === 401) {
      toLogin();
      throw new ApiError(401, 'Not signed in; redirecting to the login page…');
    }
    let body = null;
    try {
      body = await res.json();
    } catch (_) {
      body = null;
    }
    if (!res.ok) {
      const msg = body && typeof body.error === 'string' ? body.error : 'HTTP ' + res.status + ' ' + res.statusText;
      throw new ApiError(res.status, msg);
    }
    if (body === null || typeof body !== 'object') throw new ApiError(res.status, 'The server sent a malformed response.');
    return body;
  }

  /** The server's `next` URL, with its page size raised (full loads). */
  function withLimit(next, limit) {
    const u = new URL(next, location.origin);
    u.searchParams.set('limit', String(limit));
    return u.pathname + u.search;
  }

  function errorBox(err, title) {
    const status = err && err.status ? ' (' + err.status + ')' : '';
    return h('div', { class: 'error-box', role: 'alert', 'data-testid': 'error' },
      h('strong', null, (title || (err && err.status === 404 ? 'Not found' : 'Something went wrong')) + status),
      h('p', null, err && err.message ? err.message : String(err)));
  }

  function loadingEl(text) {
    return h('div', { class: 'loading', role: 'status', 'data-testid': 'loading' },
      h('span', { class: 'spinner', 'aria-hidden': 'true' }), text || 'Loading…');
  }

  function emptyEl(text) {
    return h('div', { class: 'empty', 'data-testid': 'empty' }, text);
  }

  // ------------------------------------------------------------------ JSON tree

  function jsonTree(value, opts) {
    const openDepth = opts && opts.openDepth !== undefined ? opts.openDepth : 2;
    return h('div', { class: 'json', 'data-testid': 'json' }, jsonValue(value, 0, openDepth));
  }

  function jsonValue(v, depth, openDepth) {
    if (v === null || v === undefined) return h('span', { class: 'j-null' }, 'null');
    if (typeof v === 'string') return jsonString(v);
    if (typeof v === 'number') return h('span', { class: 'j-num' }, String(v));
    if (typeof v === 'boolean') return h('span', { class: 'j-bool' }, String(v));
    if (Array.isArray(v)) return jsonCompound(v, true, depth, openDepth);
    if (typeof v === 'object') return jsonCompound(v, false, depth, openDepth);
    return h('span', null, String(v));
  }

  function jsonString(s) {
    const quoted = JSON.stringify(s);
    if (quoted.length <= STRING_MAX) return h('span', { class: 'j-str' }, quoted);
    const text = h('span', { class: 'j-str' }, quoted.slice(0, STRING_MAX) + '…');
    const more = h('button', { type: 'button', class: 'linkish', 'data-testid': 'show-more' },
      'show more (' + fmtInt(s.length) + ' chars)');
    more.addEventListener('click', () => {
      text.textContent = quoted;
      more.remove();
    });
    return h('span', null, text, ' ', more);
  }

  function jsonCompound(v, isArray, depth, openDepth) {
    const keys = isArray ? null : Object.keys(v);
    const n = isArray ? v.length : keys.length;
    if (n === 0) return h('span', { class: 'j-punct' }, isArray ? '[]' : '{}');
    const details = h('details', { class: 'j-node' });
    const summary = h('summary', null,
      h('span', { class: 'j-punct' }, isArray ? '[' : '{'),
      h('span', { class: 'j-count' }, n + (isArray ? (n === 1 ? ' item' : ' items') : (n === 1 ? ' key' : ' keys'))),
      h('span', { class: 'j-punct' }, isArray ? ']' : '}'));
    details.appendChild(summary);
    const body = h('div', { class: 'j-body' });
    details.appendChild(body);
    let rendered = false;
    const render = () => {
      if (rendered) return;
      rendered = true;
      if (isArray) {
        let shown = 0;
        const more = h('button', { type: 'button', class: 'linkish', 'data-testid': 'show-more' });
        const page = () => {
          const end = Math.min(v.length, shown + ARRAY_PAGE);
          const frag = document.createDocumentFragment();
          for (let i = shown; i < end; i++) frag.appendChild(jsonEntry(String(i), v[i], depth, openDepth, true));
          shown = end;
          body.insertBefore(frag, more.parentNode ? more : null);
          if (shown >= v.length) more.remove();
          else more.textContent = 'show more (' + fmtInt(v.length - shown) + ' more items)';
        };
        more.addEventListener('click', page);
        body.appendChild(more);
        page();
      } else {
        for (const k of keys) body.appendChild(jsonEntry(k, v[k], depth, openDepth, false));
      }
    };
    details.addEventListener('toggle', () => { if (details.open) render(); });
    if (depth < openDepth) {
      details.open = true;
      render();
    }
    return details;
  }

  function jsonEntry(key, value, depth, openDepth, isIndex) {
    return h('div', { class: 'j-entry' },
      h('span', { class: isIndex ? 'j-idx' : 'j-key' }, isIndex ? key : JSON.stringify(key)),
      h('span', { class: 'j-punct' }, ': '),
      jsonValue(value, depth + 1, openDepth));
  }

  // --------------------------------------------------------------------- router

  const routes = [
    [/^\/(?:executions\/?)?$/, (ctx) => pageList(ctx)],
    [/^\/executions\/([^/]+)\/steps\/([^/]+)\/?$/, (ctx, m) => pageExecution(ctx, m[1], m[2])],
    [/^\/executions\/([^/]+)\/why\/([^/]+)\/?$/, (ctx, m) => pageWhy(ctx, m[1], m[2])],
    [/^\/executions\/([^/]+)\/?$/, (ctx, m) => pageExecution(ctx, m[1], null)],
    [/^\/candidates\/([^/]+)\/?$/, (ctx, m) => pageCandidate(ctx, m[1])],
    [/^\/search\/?$/, (ctx) => pageSearch(ctx)],
    [/^\/stats\/?$/, (ctx) => pageStats(ctx)],
    [/^\/login\/?$/, (ctx) => pageLogin(ctx)],
  ];

  let generation = 0;
  let disposers = [];
  let shell = null;

  function navigate(url, replace) {
    if (replace) history.replaceState(null, '', url);
    else history.pushState(null, '', url);
    render();
    window.scrollTo(0, 0);
  }

  function decodeSeg(s) {
    try {
      return decodeURIComponent(s);
    } catch (_) {
      return s;
    }
  }

  function render() {
    for (const d of disposers) {
      try { d(); } catch (_) { /* a page's cleanup must not break the next page */ }
    }
    disposers = [];
    const gen = ++generation;
    const main = shell.main;
    main.replaceChildren();
    const query = new URLSearchParams(location.search);
    const ctx = {
      main,
      query,
      alive: () => gen === generation,
      onDispose: (fn) => disposers.push(fn),
    };
    const pathname = location.pathname;
    let handler = null;
    let match = null;
    for (const [re, fn] of routes) {
      match = pathname.match(re);
      if (match) {
        handler = fn;
        break;
      }
    }
    const page = handler ? pathname.split('/')[1] || 'executions' : 'notfound';
    document.body.setAttribute('data-page', page);
    shell.setActive(page);
    shell.searchInput.value = page === 'search' ? query.get('q') || '' : '';
    if (!handler) {
      setTitle('Not found');
      main.appendChild(errorBox(new ApiError(404, 'There is no page at ' + pathname + '.'), 'Not found'));
      return;
    }
    const decoded = match.map((s, i) => (i === 0 ? s : decodeSeg(s)));
    Promise.resolve()
      .then(() => handler(ctx, decoded))
      .catch((err) => {
        if (!ctx.alive()) return;
        main.appendChild(errorBox(err));
      });
  }

  function setTitle(t) {
    document.title = t ? t + ' · X-Ray' : 'X-Ray';
  }

  function buildShell(root) {
    const searchInput = h('input', {
      type: 'search', name: 'q', id: 'header-search', placeholder: 'Search steps…',
      'aria-label': 'Search steps', autocomplete: 'off', 'data-testid': 'search-input',
    });
    const searchForm = h('form', { class: 'header-search', role: 'search', action: '/search', method: 'get' },
      searchInput, h('kbd', { class: 'kbd-hint', 'aria-hidden': 'true' }, '/'));
    searchForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const q = searchInput.value.trim();
      if (q) navigate('/search' + qs({ q }));
    });
    const navExec = link('/executions', { class: 'nav-link', 'data-nav': 'executions' }, 'Executions');
    const navStats = link('/stats', { class: 'nav-link', 'data-nav': 'stats' }, 'Stats');
    const header = h('header', { class: 'topbar' },
      link('/', { class: 'brand', 'aria-label': 'X-Ray home' },
        h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'X-Ray'),
      h('nav', { class: 'nav', 'aria-label': 'Main' }, navExec, navStats),
      searchForm);
    const main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
    root.replaceChildren(header, main);
    return {
      main,
      searchInput,
      setActive(page) {
        for (const [el, name] of [[navExec, 'executions'], [navStats, 'stats']]) {
          if (page === name) el.setAttribute('aria-current', 'page');
          else el.removeAttribute('aria-current');
        }
      },
    };
  }

  function isEditable(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  function installGlobalHandlers() {
    document.addEventListener('click', (e) => {
      if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      const a = e.target instanceof Element ? e.target.closest('a[href]') : null;
      if (!a || a.target || a.hasAttribute('download')) return;
      const href = a.getAttribute('href');
      if (!isSafePath(href) || href.startsWith('/login') || href.startsWith('/api/')) return;
      e.preventDefault();
      navigate(href);
    });
    document.addEventListener('keydown', (e) => {
      if (e.key === '/' && !e.ctrlKey && !e.metaKey && !e.altKey && !isEditable(document.activeElement)) {
        e.preventDefault();
        shell.searchInput.focus();
        shell.searchInput.select();
      }
    });
    window.addEventListener('popstate', render);
  }

  // ---------------------------------------------------------------------- login

  function safeNext(n) {
    return isSafePath(n) && !n.startsWith('/login') ? n : '/';
  }

  function pageLogin(ctx) {
    setTitle('Sign in');
    const next = safeNext(ctx.query.get('next'));
    const input = h('input', {
      type: 'password', id: 'token', name: 'token', required: true,
      autocomplete: 'current-password', spellcheck: 'false', 'data-testid': 'token-input',
    });
    const form = h('form', { method: 'post', action: '/login', class: 'login-form', 'data-testid': 'login-form' },
      h('label', { for: 'token' }, 'Read token'),
      input,
      h('input', { type: 'hidden', name: 'next', value: next }),
      h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'login-submit' }, 'Sign in'));
    ctx.main.appendChild(h('section', { class: 'login-card card' },
      h('h1', null, 'Sign in'),
      h('p', { class: 'muted' }, 'This collector asks for its read token before showing traces.'),
      ctx.query.get('error')
        ? h('div', { class: 'error-box', role: 'alert', 'data-testid': 'error' },
          h('strong', null, 'Wrong token'), h('p', null, 'That token was not accepted. Check it and try again.'))
        : null,
      form));
    input.focus();
  }

  // ----------------------------------------------------------- executions list

  function pageList(ctx) {
    setTitle('Executions');
    const q = ctx.query;
    const filters = {
      project: q.get('project') || '',
      name: q.get('name') || '',
      status: q.get('status') || '',
      since: q.get('since') || '',
      until: q.get('until') || '',
    };
    const field = (name, label, placeholder) => h('div', { class: 'field' },
      h('label', { for: 'f-' + name }, label),
      h('input', { id: 'f-' + name, name, type: 'text', value: filters[name], placeholder, autocomplete: 'off', 'data-testid': 'filter-' + name }));
    const statusSel = h('select', { id: 'f-status', name: 'status', 'data-testid': 'filter-status' },
      ['', 'running', 'ok', 'error'].map((s) => h('option', { value: s, selected: s === filters.status }, s || 'any')));
    const form = h('form', { class: 'filters', 'data-testid': 'filters', action: '/executions', method: 'get' },
      field('project', 'Project', 'any'),
      field('name', 'Name', 'any'),
      h('div', { class: 'field' }, h('label', { for: 'f-status' }, 'Status'), statusSel),
      field('since', 'Since', '30m, 2h, 7d, RFC 3339'),
      field('until', 'Until', 'RFC 3339'),
      h('div', { class: 'field field-actions' },
        h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'filter-apply' }, 'Apply'),
        link('/executions', { class: 'btn' }, 'Reset')));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const fd = new FormData(form);
      const params = {};
      for (const k of Object.keys(filters)) params[k] = fd.get(k);
      navigate('/executions' + qs(params));
    });

    const tbody = h('tbody');
    const table = h('table', { class: 'table executions', 'data-testid': 'executions' },
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Project'),
        h('th', { scope: 'col' }, 'Started'), h('th', { scope: 'col', class: 'num' }, 'Duration'),
        h('th', { scope: 'col', class: 'num' }, 'Steps'))),
      tbody);
    const status = h('div', { class: 'list-status' });
    const more = h('button', { type: 'button', class: 'btn', 'data-testid': 'next-page', hidden: true }, 'Next page');
    const box = h('div', { class: 'table-wrap' }, table);
    ctx.main.append(
      h('div', { class: 'page-head' }, h('h1', null, 'Executions')),
      form, status, box, h('div', { class: 'pager' }, more));

    const seen = new Set();
    let cursor = null;
    let count = 0;
    const load = async () => {
      more.disabled = true;
      status.replaceChildren(loadingEl());
      let d;
      try {
        d = await api('/api/v1/executions' + qs(Object.assign({}, filters, { limit: 50, cursor })));
      } catch (err) {
        if (!ctx.alive()) return;
        status.replaceChildren(errorBox(err));
        more.disabled = false;
        return;
      }
      if (!ctx.alive()) return;
      status.replaceChildren();
      for (const ex of d.executions || []) {
        if (seen.has(ex.id)) continue;
        seen.add(ex.id);
        tbody.appendChild(executionRow(ex));
        count++;
      }
      cursor = d.next_cursor || null;
      more.hidden = !cursor;
      more.disabled = false;
      if (count === 0) {
        const any = Object.values(filters).some((v) => v);
        status.replaceChildren(emptyEl(any ? 'No executions match these filters.' : 'No executions recorded yet.'));
        box.hidden = true;
      }
    };
    more.addEventListener('click', load);
    return load();
  }

  function executionRow(ex) {
    const href = path('executions', ex.id);
    const dur = ex.ended_at_us != null ? fmtDur(ex.ended_at_us - ex.started_at_us) : null;
    const tr = h('tr', { class: 'clickable', 'data-testid': 'execution-row', 'data-status': ex.status, 'data-execution-id': ex.id },
      h('td', null, badge(ex.status)),
      h('td', { class: 'col-name' }, link(href, { class: 'row-link' }, ex.name),
        h('span', { class: 'id-hint mono', title: ex.id }, String(ex.id).slice(0, 8))),
      h('td', { class: 'col-project' }, ex.project),
      h('td', null, timeEl(ex.started_at_us)),
      h('td', { class: 'num' }, dur === null ? h('span', { class: 'running-text' }, 'running…') : dur),
      h('td', { class: 'num' }, fmtInt(ex.steps)));
    tr.addEventListener('click', (e) => {
      if (e.target instanceof Element && e.target.closest('a')) return;
      if (window.getSelection && String(window.getSelection()).length > 0) return;
      navigate(href);
    });
    return tr;
  }

  // ------------------------------------------------------------- execution page

  async function pageExecution(ctx, rawId, initialStep) {
    setTitle('Execution');
    const head = h('section', { class: 'exec-head' }, loadingEl());
    ctx.main.appendChild(head);
    const first = await api('/api/v1/executions/' + enc(rawId) + '?limit=' + FIRST_LIMIT);
    if (!ctx.alive()) return;
    const exec = first.execution;
    const eid = exec.id;
    setTitle(exec.name);
    head.replaceChildren(...execHeader(exec));

    const panel = createStepPanel(ctx, exec, () => {
      wf.setSelected(null);
      history.replaceState(null, '', path('executions', rawId === 'latest' ? eid : rawId));
    });
    const wf = createWaterfall(ctx, exec, (sid) => {
      history.replaceState(null, '', path('executions', eid, 'steps', sid));
      panel.show(sid, true);
    });
    ctx.main.appendChild(h('div', { class: 'exec-split' }, wf.el, panel.el));
    if (initialStep) panel.show(initialStep, false);
    await wf.start(first, initialStep);
  }

  function execHeader(exec) {
    const dur = exec.ended_at_us != null ? fmtDur(exec.ended_at_us - exec.started_at_us) : null;
    const out = [
      h('div', { class: 'crumbs' }, link('/executions', null, 'Executions'), h('span', { 'aria-hidden': 'true' }, ' / '),
        link('/executions' + qs({ project: exec.project }), null, exec.project)),
      h('div', { class: 'exec-title' }, h('h1', null, exec.name), badge(exec.status)),
      h('dl', { class: 'meta' },
        metaItem('Execution', h('span', { class: 'mono', 'data-testid': 'execution-id' }, exec.id)),
        metaItem('Started', timeEl(exec.started_at_us)),
        metaItem('Duration', dur === null ? h('span', { class: 'running-text' }, 'running…') : dur),
        metaItem('Steps', fmtInt(exec.steps))),
    ];
    const llm = exec.llm && Array.isArray(exec.llm.models) && exec.llm.calls > 0 ? exec.llm : null;
    if (llm) {
      out[out.length - 1].appendChild(metaItem('LLM cost', h('span', {
        'data-testid': 'execution-cost',
        title: typeof llm.cost_usd === 'number' ? null : 'Unknown: a model has no price (see LLM usage)',
      }, fmtCost(llm), h('span', { class: 'muted' }, ' · ' + fmtInt(llm.calls) + (llm.calls === 1 ? ' call' : ' calls')))));
    }
    if (exec.error) out.push(h('pre', { class: 'error-text', 'data-testid': 'execution-error' }, exec.error));
    const extras = [];
    if (llm) {
      extras.push(h('details', { class: 'json-box', 'data-testid': 'execution-llm' }, h('summary', null, 'LLM usage'),
        modelsTable(llm.models, 'execution-llm-row', { total: llm, compact: true })));
    }
    if (exec.metadata != null) extras.push(collapsibleJson('Metadata', exec.metadata));
    if (exec.outcome != null) extras.push(collapsibleJson('Outcome', exec.outcome));
    if (extras.length) out.push(h('div', { class: 'exec-extras' }, extras));
    return out;
  }

  function metaItem(label, value) {
    return h('div', { class: 'meta-item' }, h('dt', null, label), h('dd', null, value));
  }

  /**
   * Calls, tokens and cost per model (stats, an execution), a row each (`rowTestid`),
   * with a total row when `opts.total` is given. A cost that is not a number is
   * shown as "—": the model has no price.
   */
  function modelsTable(models, rowTestid, opts) {
    const o = opts || {};
    const cells = (m) => [h('td', { class: 'num' }, fmtInt(m.calls)), h('td', { class: 'num' }, fmtInt(m.prompt_tokens)),
      h('td', { class: 'num' }, fmtInt(m.completion_tokens)), h('td', { class: 'num' }, fmtCost(m))];
    return h('table', { class: o.compact ? 'table compact' : 'table', 'data-testid': o.testid || null },
      h('thead', null, h('tr', null, h('th', null, 'Model'), h('th', { class: 'num' }, 'Calls'), h('th', { class: 'num' }, 'Prompt tokens'),
        h('th', { class: 'num' }, 'Completion tokens'), h('th', { class: 'num' }, 'Cost'))),
      h('tbody', null, models.map((m) => h('tr', { 'data-testid': rowTestid }, h('td', null, m.model), cells(m)))),
      o.total ? h('tfoot', null, h('tr', { 'data-testid': rowTestid + '-total' }, h('td', null, 'Total'), cells(o.total))) : null);
  }

  function collapsibleJson(title, value) {
    return h('details', { class: 'json-box' }, h('summary', null, title), jsonTree(value));
  }

  /**
   * The virtualised waterfall. Only rows in view (+ overscan) are in the DOM; the
   * spacer is `rows × ROW_H` tall. Small executions load whole and show fully
   * expanded; large ones load top-level steps page by page and children on demand.
   */
  function createWaterfall(ctx, exec, onSelect) {
    const ROOT = '\u0000root';
    const t0 = exec.started_at_us;
    let tEnd = exec.ended_at_us != null ? exec.ended_at_us : nowUs();
    const byId = new Map();     // step id → outline
    const order = [];           // full mode: ids in start order
    let kids = new Map();       // parent id (or ROOT) → child ids in start order
    const expanded = new Set(); // lazy mode: open rows
    const collapsed = new Set(); // full mode: closed rows
    const childState = new Map(); // lazy mode: id → 'loading' | 'done' | 'error'
    let lazy = false;
    let rootNext = null;
    let rootLoading = false;
    let flat = [];
    let selected = null;
    let loadError = null;

    const axisTrack = h('div', { class: 'wf-axis-track' });
    const axis = h('div', { class: 'wf-axis', 'aria-hidden': 'true' }, h('div', { class: 'wf-axis-label' }, 'Step'), axisTrack);
    const spacer = h('div', { class: 'wf-spacer', role: 'presentation' });
    const scroller = h('div', {
      class: 'wf-scroll', tabindex: '0', role: 'tree', 'aria-label': 'Steps (use arrow keys)', 'data-testid': 'waterfall',
    }, axis, spacer);
    const status = h('div', { class: 'wf-status', 'data-testid': 'waterfall-status' });
    const el = h('section', { class: 'wf', 'aria-label': 'Waterfall' }, scroller, status);

    const isOpen = (id) => (lazy ? expanded.has(id) : !collapsed.has(id));
    const hasKids = (id) => (lazy ? (byId.get(id).children || 0) > 0 : kids.has(id));

    function note(step) {
      const end = step.started_at_us + (step.duration_us != null ? step.duration_us : 0);
      if (end > tEnd) tEnd = end;
    }

    function addFull(steps) {
      for (const s of steps || []) {
        if (byId.has(s.id)) continue;
        byId.set(s.id, s);
        order.push(s.id);
        note(s);
      }
      kids = new Map();
      for (const id of order) {
        const p = byId.get(id).parent_id;
        const key = p != null && p !== id && byId.has(p) ? p : ROOT;
        let list = kids.get(key);
        if (!list) kids.set(key, (list = []));
        list.push(id);
      }
    }

    function addUnder(key, steps) {
      let list = kids.get(key);
      if (!list) kids.set(key, (list = []));
      for (const s of steps || []) {
        if (!byId.has(s.id)) byId.set(s.id, s);
        list.push(s.id);
        note(s);
      }
    }

    function flatten() {
      const out = [];
      const top = kids.get(ROOT);
      if (!top) return out;
      const stack = [[top, 0, 0]];
      const onPath = new Set();
      while (stack.length) {
        const frame = stack[stack.length - 1];
        const list = frame[0];
        if (frame[1] >= list.length) {
          stack.pop();
          if (frame[3]) onPath.delete(frame[3]);
          continue;
        }
        const id = list[frame[1]++];
        out.push({ id, depth: frame[2] });
        if (isOpen(id) && kids.has(id) && !onPath.has(id)) {
          onPath.add(id);
          stack.push([kids.get(id), 0, frame[2] + 1, id]);
        }
      }
      return out;
    }

    function refresh() {
      flat = flatten();
      renderAxis();
      renderRows();
    }

    function span() {
      return Math.max(1, tEnd - t0);
    }

    function renderAxis() {
      const sp = span();
      const ticks = [];
      for (let i = 0; i <= 4; i++) {
        const t = h('span', { class: 'wf-tick' + (i === 4 ? ' wf-tick-end' : '') }, fmtDur((sp * i) / 4));
        t.style.left = (i * 25) + '%';
        ticks.push(t);
      }
      axisTrack.replaceChildren(...ticks);
    }

    let frameQueued = false;
    function scheduleRows() {
      if (frameQueued) return;
      frameQueued = true;
      requestAnimationFrame(() => {
        frameQueued = false;
        if (ctx.alive()) renderRows();
      });
    }

    function renderRows() {
      spacer.style.height = flat.length * ROW_H + 'px';
      const top = scroller.scrollTop;
      const height = scroller.clientHeight || 600;
      const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
      const last = Math.min(flat.length, Math.ceil((top + height) / ROW_H) + OVERSCAN);
      const nodes = [];
      for (let i = first; i < last; i++) nodes.push(rowEl(i));
      spacer.replaceChildren(...nodes);
      const si = selectedIndex();
      if (si >= first && si < last) scroller.setAttribute('aria-activedescendant', 'wf-r-' + si);
      else scroller.removeAttribute('aria-activedescendant');
      if (lazy && rootNext && !rootLoading && last >= flat.length - OVERSCAN * 2) loadRoots(rootNext);
      renderStatus();
    }

    function renderStatus() {
      const parts = [fmtInt(flat.length) + ' rows shown', fmtInt(exec.steps) + ' steps in execution'];
      if (lazy) parts.push('large execution: top-level steps load as you scroll, children on expand');
      if (rootLoading) parts.push('loading more…');
      status.replaceChildren(parts.join(' · '));
      if (loadError) status.appendChild(errorBox(loadError));
      if (flat.length === 0 && !rootLoading) status.appendChild(emptyEl('This execution has no steps.'));
    }

    function rowEl(i) {
      const { id, depth } = flat[i];
      const st = byId.get(id);
      const cls = statusClass(st.status);
      const kidsHere = hasKids(id);
      const open = kidsHere && isOpen(id);
      const loading = childState.get(id) === 'loading';
      const toggle = kidsHere
        ? h('span', { class: 'wf-toggle' + (loading ? ' is-loading' : ''), 'data-testid': 'wf-toggle', title: open ? 'Collapse' : 'Expand' }, open ? '▾' : '▸')
        : h('span', { class: 'wf-toggle-pad' });
      const label = h('div', { class: 'wf-label' },
        toggle,
        h('span', { class: 'dot status-' + cls, 'aria-hidden': 'true' }),
        h('span', { class: 'wf-name', title: st.name }, st.name),
        st.kind ? h('span', { class: 'wf-kind' }, st.kind) : null,
        lazy && st.children > 0 && !open ? h('span', { class: 'wf-count', title: st.children + ' children' }, '+' + fmtInt(st.children)) : null,
        st.decisions > 0 ? h('span', { class: 'wf-dec', title: st.decisions + ' decisions', 'data-testid': 'decision-marker' }, '◆ ' + fmtInt(st.decisions)) : null,
        st.has_error && cls !== 'error' && cls !== 'panicked' ? h('span', { class: 'wf-err', title: 'has an error' }, '!') : null,
        h('span', { class: 'wf-dur' }, st.duration_us != null ? fmtDur(st.duration_us) : st.status === 'running' ? 'running…' : '—'));
      label.style.paddingLeft = 6 + Math.min(depth, 40) * 14 + 'px';
      const sp = span();
      const start = Math.max(0, st.started_at_us - t0);
      const dur = st.duration_us != null ? st.duration_us : Math.max(0, tEnd - st.started_at_us);
      const bar = h('div', { class: 'wf-bar status-' + cls });
      bar.style.left = Math.min(100, (start / sp) * 100) + '%';
      bar.style.width = Math.min(100 - Math.min(100, (start / sp) * 100), (dur / sp) * 100) + '%';
      const isSel = id === selected;
      const row = h('div', {
        class: 'wf-row' + (isSel ? ' selected' : '') + (i % 2 ? ' odd' : ''),
        id: 'wf-r-' + i,
        role: 'treeitem',
        'aria-level': depth + 1,
        'aria-selected': isSel ? 'true' : 'false',
        'aria-expanded': kidsHere ? String(open) : null,
        'aria-label': st.name + ', ' + st.status,
        'data-testid': 'waterfall-row',
        'data-step-id': id,
        'data-index': i,
        'data-status': st.status,
        'data-children': kidsHere ? (lazy ? st.children : kids.get(id).length) : 0,
      }, label, h('div', { class: 'wf-track' }, bar));
      row.style.top = i * ROW_H + 'px';
      return row;
    }

    function selectedIndex() {
      if (selected === null) return -1;
      for (let i = 0; i < flat.length; i++) if (flat[i].id === selected) return i;
      return -1;
    }

    function ensureVisible(i, center) {
      const axisH = axis.offsetHeight || ROW_H;
      const y = i * ROW_H;
      const viewH = scroller.clientHeight - axisH;
      if (center) scroller.scrollTop = Math.max(0, y - viewH / 2);
      else if (y < scroller.scrollTop) scroller.scrollTop = y;
      else if (y + ROW_H > scroller.scrollTop + viewH) scroller.scrollTop = y + ROW_H - viewH;
    }

    function select(i) {
      if (flat.length === 0) return;
      i = Math.max(0, Math.min(flat.length - 1, i));
      selected = flat[i].id;
      ensureVisible(i, false);
      renderRows();
      onSelect(selected);
    }

    async function expand(id) {
      if (!hasKids(id)) return;
      if (!lazy) {
        collapsed.delete(id);
        refresh();
        return;
      }
      if (childState.get(id) === 'done' || childState.get(id) === 'loading') {
        expanded.add(id);
        refresh();
        return;
      }
      childState.set(id, 'loading');
      expanded.add(id);
      renderRows();
      let url = '/api/v1/executions/' + enc(exec.id) + '/steps?parent=' + enc(id) + '&limit=' + CHILD_PAGE;
      try {
        kids.set(id, []);
        while (url && ctx.alive()) {
          const page = await api(url);
          if (!ctx.alive()) return;
          addUnder(id, page.steps);
          url = page.next || null;
          refresh();
        }
        childState.set(id, 'done');
      } catch (err) {
        childState.delete(id);
        kids.delete(id);
        expanded.delete(id);
        loadError = err;
      }
      if (ctx.alive()) refresh();
    }

    function collapse(id) {
      if (lazy) expanded.delete(id);
      else collapsed.add(id);
      refresh();
    }

    function toggle(id) {
      if (hasKids(id) && isOpen(id)) collapse(id);
      else expand(id);
    }

    async function loadRoots(url) {
      rootLoading = true;
      renderStatus();
      try {
        const page = await api(url);
        if (!ctx.alive()) return;
        addUnder(ROOT, page.steps);
        rootNext = page.next || null;
      } catch (err) {
        loadError = err;
        rootNext = null;
      } finally {
        rootLoading = false;
      }
      if (ctx.alive()) refresh();
    }

    spacer.addEventListener('click', (e) => {
      const target = e.target instanceof Element ? e.target : null;
      const row = target && target.closest('.wf-row');
      if (!row) return;
      const i = Number(row.getAttribute('data-index'));
      if (target.closest('.wf-toggle')) {
        toggle(flat[i].id);
        return;
      }
      scroller.focus({ preventScroll: true });
      select(i);
    });
    spacer.addEventListener('dblclick', (e) => {
      const row = e.target instanceof Element ? e.target.closest('.wf-row') : null;
      if (row) toggle(flat[Number(row.getAttribute('data-index'))].id);
    });
    scroller.addEventListener('scroll', scheduleRows, { passive: true });
    scroller.addEventListener('keydown', (e) => {
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      const i = selectedIndex();
      const page = Math.max(1, Math.floor(scroller.clientHeight / ROW_H) - 2);
      switch (e.key) {
        case 'ArrowDown': case 'j': select(i < 0 ? 0 : i + 1); break;
        case 'ArrowUp': case 'k': select(i < 0 ? 0 : i - 1); break;
        case 'PageDown': select(i < 0 ? page : i + page); break;
        case 'PageUp': select(i < 0 ? 0 : i - page); break;
        case 'Home': select(0); break;
        case 'End': select(flat.length - 1); break;
        case 'Enter':
          if (i < 0) select(0);
          else {
            if (hasKids(flat[i].id) && !isOpen(flat[i].id)) expand(flat[i].id);
            onSelect(flat[i].id);
          }
          break;
        case 'ArrowRight': case 'l':
          if (i < 0) select(0);
          else if (hasKids(flat[i].id) && !isOpen(flat[i].id)) expand(flat[i].id);
          else if (hasKids(flat[i].id)) select(i + 1);
          break;
        case 'ArrowLeft': case 'h':
          if (i >= 0) {
            const id = flat[i].id;
            if (hasKids(id) && isOpen(id)) collapse(id);
            else {
              const d = flat[i].depth;
              for (let j = i - 1; j >= 0; j--) if (flat[j].depth < d) { select(j); break; }
            }
          }
          break;
        default: return;
      }
      e.preventDefault();
    });
    const onResize = () => scheduleRows();
    window.addEventListener('resize', onResize);
    ctx.onDispose(() => window.removeEventListener('resize', onResize));

    async function start(first, initialStep) {
      selected = initialStep || null;
      if (exec.steps > FULL_LOAD_MAX) {
        lazy = true;
        await loadRoots('/api/v1/executions/' + enc(exec.id) + '/steps?parent=root&limit=' + ROOT_PAGE);
      } else {
        addFull(first.steps);
        refresh();
        let next = first.next;
        try {
          while (next && ctx.alive()) {
            const page = await api(withLimit(next, FULL_LOAD_MAX));
            if (!ctx.alive()) return;
            addFull(page.steps);
            next = page.next || null;
          }
        } catch (err) {
          loadError = err;
        }
        if (!ctx.alive()) return;
        refresh();
      }
      if (initialStep) {
        const i = selectedIndex();
        if (i >= 0) {
          ensureVisible(i, true);
          renderRows();
        }
      }
    }

    return {
      el,
      start,
      setSelected(id) {
        selected = id;
        renderRows();
      },
    };
  }

  // ---------------------------------------------------------------- step panel

  function createStepPanel(ctx, exec, onClose) {
    const el = h('aside', { class: 'panel step-panel', 'data-testid': 'step-panel', 'data-state': 'empty', 'aria-label': 'Step details' },
      h('div', { class: 'panel-empty' }, 'Select a step to see its input, output and decisions.',
        h('br'), h('span', { class: 'muted' }, 'Keyboard: focus the waterfall, then ↑/↓ or j/k, Enter/→ to expand, ← to collapse.')));
    let token = 0;
    let timer = null;
    let current = null;

    function show(sid, debounce) {
      if (sid === current && el.getAttribute('data-state') === 'loaded') return;
      current = sid;
      const my = ++token;
      clearTimeout(timer);
      el.setAttribute('data-state', 'loading');
      const run = async () => {
        el.replaceChildren(loadingEl('Loading step…'));
        try {
          const d = await api('/api/v1/executions/' + enc(exec.id) + '/steps/' + enc(sid));
          if (my !== token || !ctx.alive()) return;
          el.replaceChildren(...stepDetail(d, exec, close));
          el.setAttribute('data-state', 'loaded');
          el.setAttribute('data-step-id', d.id);
          el.scrollTop = 0;
        } catch (err) {
          if (my !== token || !ctx.alive()) return;
          el.replaceChildren(errorBox(err));
          el.setAttribute('data-state', 'error');
        }
      };
      if (debounce) timer = setTimeout(run, 60);
      else run();
    }

    function close() {
      token++;
      current = null;
      el.setAttribute('data-state', 'empty');
      el.removeAttribute('data-step-id');
      el.replaceChildren(h('div', { class: 'panel-empty' }, 'Select a step to see its input, output and decisions.'));
      onClose();
    }

    ctx.onDispose(() => clearTimeout(timer));
    return { el, show };
  }

  function section(title, testid, ...content) {
    return h('section', { class: 'panel-sec', 'data-testid': testid || null }, h('h3', null, title), ...content);
  }

  function stepDetail(d, exec, close) {
    const out = [];
    const closeBtn = h('button', { type: 'button', class: 'btn btn-icon', 'aria-label': 'Close step panel', title: 'Close' }, '×');
    closeBtn.addEventListener('click', close);
    out.push(h('div', { class: 'panel-head' },
      h('h2', { 'data-testid': 'step-name' }, d.name),
      badge(d.status),
      d.kind ? h('span', { class: 'chip' }, d.kind) : null,
      h('span', { class: 'spacer' }),
      closeBtn));
    out.push(h('dl', { class: 'meta' },
      metaItem('Start', h('span', { title: fmtTime(d.started_at_us) }, '+' + fmtDur(d.started_at_us - exec.started_at_us))),
      metaItem('Duration', d.duration_us != null ? fmtDur(d.duration_us) : d.status === 'running' ? h('span', { class: 'running-text' }, 'running…') : '—'),
      metaItem('Step', h('span', { class: 'mono' }, d.id)),
      d.parent_id ? metaItem('Parent', link(path('executions', exec.id, 'steps', d.parent_id), { class: 'mono' }, d.parent_id)) : null));
    const why = whySection(d);
    if (why) out.push(why);
    if (d.error) out.push(section('Error', 'step-error', h('pre', { class: 'error-text' }, d.error)));
    out.push(section('Input', 'step-input', d.input == null ? h('span', { class: 'muted' }, 'none') : jsonTree(d.input)));
    out.push(section('Output', 'step-output', d.output == null ? h('span', { class: 'muted' }, d.status === 'running' ? 'not yet' : 'none') : jsonTree(d.output)));

    const decisions = Array.isArray(d.decisions) ? d.decisions : [];
    if (decisions.length) out.push(decisionsSection(decisions, exec));

    const llm = Array.isArray(d.llm_usage) ? d.llm_usage : [];
    if (llm.length) {
      out.push(section('LLM usage', 'llm-usage', h('table', { class: 'table compact' },
        h('thead', null, h('tr', null, h('th', null, 'Model'), h('th', { class: 'num' }, 'Prompt'),
          h('th', { class: 'num' }, 'Completion'), h('th', { class: 'num' }, 'Cost'))),
        h('tbody', null, llm.map((u) => h('tr', null, h('td', null, u.model), h('td', { class: 'num' }, fmtInt(u.prompt_tokens)),
          h('td', { class: 'num' }, fmtInt(u.completion_tokens)), h('td', { class: 'num' }, fmtCost(u))))))));
    }

    let attrs = d.attributes;
    let events = null;
    if (attrs && typeof attrs === 'object' && !Array.isArray(attrs) && Array.isArray(attrs.events)) {
      events = attrs.events;
      attrs = Object.assign({}, attrs);
      delete attrs.events;
    }
    if (events && events.length) {
      out.push(section('Events', 'events', h('ol', { class: 'events' }, events.map((ev) => eventItem(ev, exec)))));
    }
    if (attrs && typeof attrs === 'object' && Object.keys(attrs).length) {
      out.push(section('Attributes', 'attributes', jsonTree(attrs)));
    }
    return out;
  }

  /** The step panel's "Why" section (see `whyContent`). */
  function whySection(d) {
    const content = whyContent(d);
    return content && section('Why', 'step-why', ...content);
  }

  /**
   * Why a step did what it did: its explanation (`reasoning`), then its reasoning job
   * (status, method, attempts, error) on a small line. Null when it has neither (no
   * decisions, no failure). `d` is a step, or an entry of a candidate's path.
   */
  function whyContent(d) {
    const job = d.reasoning_job && typeof d.reasoning_job === 'object' ? d.reasoning_job : null;
    if (d.reasoning == null && !job) return null;
    const text = d.reasoning != null
      ? h('p', { class: 'why-text', 'data-testid': 'why-text' }, String(d.reasoning))
      : h('p', { class: 'why-text muted', 'data-testid': 'why-text' },
        job.status === 'failed' ? 'No explanation: the reasoner failed.' : 'Not explained yet.');
    const line = job ? h('p', { class: 'why-job muted', 'data-testid': 'why-job', 'data-status': String(job.status) },
      jobBadge(job.status), ' ', String(job.method), ' · ',
      fmtInt(job.attempts) + (job.attempts === 1 ? ' attempt' : ' attempts'),
      job.status === 'completed' && job.completed_at_us != null ? [' · ', timeEl(job.completed_at_us)] : null,
      job.model != null ? h('span', { 'data-testid': 'why-model' }, ' · ', String(job.model),
        job.prompt_tokens != null && job.completion_tokens != null
          ? ' · ' + fmtInt(job.prompt_tokens) + ' + ' + fmtInt(job.completion_tokens) + ' tokens' : null,
        ' · ', fmtCost(job)) : null,
      job.error != null ? [' · ', h('span', { class: 'rejected-text', 'data-testid': 'why-error' }, String(job.error))] : null) : null;
    return [text, line];
  }

  function eventItem(ev, exec) {
    if (!ev || typeof ev !== 'object' || Array.isArray(ev)) return h('li', null, jsonTree(ev));
    const rest = Object.assign({}, ev);
    const name = rest.name;
    const at = rest.at_us;
    delete rest.name;
    delete rest.at_us;
    return h('li', { class: 'event' },
      typeof at === 'number' ? h('span', { class: 'event-at mono' }, '+' + fmtDur(at - exec.started_at_us)) : null,
      h('strong', null, name != null ? String(name) : 'event'),
      Object.keys(rest).length ? jsonTree(rest, { openDepth: 1 }) : null);
  }

  function decisionsSection(decisions, exec) {
    // Funnel: one row per filter in order of first appearance.
    const filters = new Map();
    for (const d of decisions) {
      const key = d.filter == null ? '' : String(d.filter);
      let f = filters.get(key);
      if (!f) filters.set(key, (f = { key, total: 0, kept: 0, rejected: 0 }));
      f.total++;
      if (d.accepted === true) f.kept++;
      else if (d.accepted === false) f.rejected++;
    }
    const maxIn = Math.max(1, ...Array.from(filters.values(), (f) => f.total));
    const funnel = h('div', { class: 'funnel', 'data-testid': 'funnel' },
      Array.from(filters.values(), (f) => {
        const kept = h('span', { class: 'fbar-kept' });
        const rej = h('span', { class: 'fbar-rejected' });
        const other = h('span', { class: 'fbar-other' });
        kept.style.width = (f.kept / maxIn) * 100 + '%';
        rej.style.width = (f.rejected / maxIn) * 100 + '%';
        other.style.width = ((f.total - f.kept - f.rejected) / maxIn) * 100 + '%';
        return h('div', { class: 'funnel-row', 'data-testid': 'funnel-row' },
          h('span', { class: 'funnel-name', title: f.key || '(no filter)' }, f.key || '(no filter)'),
          h('span', { class: 'fbar', 'aria-hidden': 'true' }, kept, rej, other),
          h('span', { class: 'funnel-nums' },
            fmtInt(f.total) + ' in → ', h('span', { class: 'kept-text' }, fmtInt(f.kept) + ' kept'), ' / ',
            h('span', { class: 'rejected-text' }, fmtInt(f.rejected) + ' rejected')));
      }));

    let verdict = 'all';
    let filterKey = null; // null = any filter
    let limit = DECISIONS_PAGE;
    const buttons = ['all', 'accepted', 'rejected'].map((v) => {
      const b = h('button', { type: 'button', class: 'seg-btn', 'aria-pressed': v === 'all' ? 'true' : 'false', 'data-testid': 'decision-filter-' + v },
        v === 'all' ? 'All' : v === 'accepted' ? 'Accepted' : 'Rejected');
      b.addEventListener('click', () => {
        verdict = v;
        for (const o of buttons) o.setAttribute('aria-pressed', o === b ? 'true' : 'false');
        limit = DECISIONS_PAGE;
        apply();
      });
      return b;
    });
    const sel = h('select', { 'aria-label': 'Filter by filter name', 'data-testid': 'decision-filter-select' },
      h('option', { value: '\u0000any' }, 'all filters'),
      Array.from(filters.keys(), (k) => h('option', { value: k }, k || '(no filter)')));
    sel.addEventListener('change', () => {
      filterKey = sel.value === '\u0000any' ? null : sel.value;
      limit = DECISIONS_PAGE;
      apply();
    });
    const counter = h('span', { class: 'muted', 'data-testid': 'decision-count' });
    const tbody = h('tbody');
    const more = h('button', { type: 'button', class: 'btn', hidden: true }, 'Show more');
    more.addEventListener('click', () => {
      limit += DECISIONS_PAGE;
      apply();
    });

    function apply() {
      const rows = [];
      let matched = 0;
      for (const d of decisions) {
        if (verdict !== 'all' && verdictOf(d.accepted) !== verdict) continue;
        if (filterKey !== null && (d.filter == null ? '' : String(d.filter)) !== filterKey) continue;
        matched++;
        if (rows.length >= limit) continue;
        const cand = d.candidate_id == null ? '' : String(d.candidate_id);
        rows.push(h('tr', { 'data-testid': 'decision-row', 'data-verdict': verdictOf(d.accepted) },
          h('td', null, cand ? link(path('executions', exec.id, 'why', cand), { class: 'mono', 'data-testid': 'candidate-link' }, cand) : '—'),
          h('td', null, verdictBadge(d.accepted)),
          h('td', null, d.filter == null ? h('span', { class: 'muted' }, '—') : d.filter),
          h('td', { class: 'reason' }, d.reason == null ? h('span', { class: 'muted' }, '—') : d.reason),
          h('td', { class: 'num' }, fmtScore(d.score))));
      }
      tbody.replaceChildren(...rows);
      counter.textContent = fmtInt(matched) + ' of ' + fmtInt(decisions.length);
      more.hidden = matched <= rows.length;
      if (matched === 0) tbody.appendChild(h('tr', null, h('td', { colspan: '5', class: 'muted' }, 'No decisions match.')));
    }
    apply();

    return section('Decisions (' + fmtInt(decisions.length) + ')', 'decisions',
      funnel,
      h('div', { class: 'toolbar' }, h('div', { class: 'seg', role: 'group', 'aria-label': 'Verdict' }, buttons), sel, counter),
      h('div', { class: 'table-wrap' }, h('table', { class: 'table compact decisions', 'data-testid': 'decisions-table' },
        h('thead', null, h('tr', null, h('th', null, 'Candidate'), h('th', null, 'Verdict'), h('th', null, 'Filter'),
          h('th', null, 'Reason'), h('th', { class: 'num' }, 'Score'))),
        tbody)),
      more);
  }

  // ------------------------------------------------------- why / candidate pages

  function elsewhereTable(entries, testid) {
    return h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', null, h('tr', null, h('th', null, 'Execution'), h('th', null, 'Step'), h('th', null, 'Verdict'),
        h('th', null, 'Filter'), h('th', null, 'Reason'), h('th', { class: 'num' }, 'Score'), h('th', null, 'Time'))),
      h('tbody', null, entries.map((e) => h('tr', { 'data-testid': testid, 'data-verdict': verdictOf(e.accepted) },
        h('td', null, link(path('executions', e.execution_id), null, e.execution_name || e.execution_id)),
        h('td', null, link(path('executions', e.execution_id, 'steps', e.step_id), null, e.step_name)),
        h('td', null, verdictBadge(e.accepted)),
        h('td', null, e.filter == null ? '—' : e.filter),
        h('td', { class: 'reason' }, e.reason == null ? '—' : e.reason),
        h('td', { class: 'num' }, fmtScore(e.score)),
        h('td', null, timeEl(e.started_at_us)))))));
  }

  // The other executions a candidate appeared in, one row each (entries come
  // newest first, so a group's first entry is its latest decision).
  function elsewhereByExecution(entries, cand) {
    const groups = new Map();
    for (const e of entries) {
      let g = groups.get(e.execution_id);
      if (!g) {
        g = { latest: e, n: 0, accepted: 0, rejected: 0, other: 0, filters: new Set() };
        groups.set(e.execution_id, g);
      }
      g.n += 1;
      if (e.accepted === true) g.accepted += 1;
      else if (e.accepted === false) {
        g.rejected += 1;
        if (e.filter != null) g.filters.add(e.filter);
      } else g.other += 1;
    }
    const tally = (g) => {
      const parts = [];
      if (g.accepted) parts.push(fmtInt(g.accepted) + ' accepted');
      if (g.rejected) parts.push(fmtInt(g.rejected) + ' rejected' + (g.filters.size ? ' (' + [...g.filters].join(', ') + ')' : ''));
      if (g.other) parts.push(fmtInt(g.other) + ' scored');
      return fmtInt(g.n) + (g.n === 1 ? ' decision: ' : ' decisions: ') + parts.join(', ');
    };
    const rows = [...groups.values()].map((g) => {
      const e = g.latest;
      return h('tr', { 'data-testid': 'elsewhere-execution', 'data-execution-id': e.execution_id },
        h('td', null, link(path('executions', e.execution_id, 'why', cand), null, e.execution_name || e.execution_id),
          ' ', h('span', { class: 'muted mono' }, String(e.execution_id).slice(0, 8))),
        h('td', null, tally(g)),
        h('td', null, link(path('executions', e.execution_id, 'steps', e.step_id), null, e.step_name), ' ',
          verdictBadge(e.accepted), e.reason == null ? null : h('span', { class: 'reason' }, ' ' + e.reason)),
        h('td', null, timeEl(e.started_at_us)));
    });
    return h('div', null,
      h('p', { class: 'muted', 'data-testid': 'elsewhere-summary' },
        'In ' + fmtInt(groups.size) + (groups.size === 1 ? ' other execution' : ' other executions') +
        ' (from its latest ' + fmtInt(entries.length) + ' decisions elsewhere). ',
        link(path('candidates', cand), null, 'Every decision')),
      h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', null, h('tr', null, h('th', null, 'Execution'), h('th', null, 'Decisions'), h('th', null, 'Latest'),
          h('th', null, 'Time'))),
        h('tbody', null, rows))));
  }

  async function pageWhy(ctx, eid, cand) {
    setTitle('Why ' + cand);
    const body = h('div', null, loadingEl());
    ctx.main.appendChild(body);
    const [d, ex] = await Promise.all([
      api('/api/v1/executions/' + enc(eid) + '/why/' + enc(cand)),
      api('/api/v1/executions/' + enc(eid) + '?limit=1').catch(() => null),
    ]);
    if (!ctx.alive()) return;
    const execId = d.execution_id || eid;
    const entries = d.entries || [];
    const elsewhere = d.elsewhere || [];
    const t0 = ex && ex.execution ? ex.execution.started_at_us : null;
    body.replaceChildren(
      h('div', { class: 'crumbs' }, link('/executions', null, 'Executions'), ' / ',
        link(path('executions', execId), { 'data-testid': 'back-to-execution' }, ex && ex.execution ? ex.execution.name : execId),
        ' / why'),
      h('div', { class: 'page-head' }, h('h1', null, 'Why ', h('code', { 'data-testid': 'candidate' }, d.candidate || cand)),
        link(path('candidates', d.candidate || cand), { class: 'btn' }, 'All executions')),
      h('h2', null, 'In this execution'),
      entries.length === 0 ? emptyEl('This candidate has no decisions in this execution.')
        : h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
          h('thead', null, h('tr', null, h('th', null, 'Time'), h('th', null, 'Step'), h('th', null, 'Verdict'),
            h('th', null, 'Filter'), h('th', null, 'Reason'), h('th', { class: 'num' }, 'Score'))),
          h('tbody', null, entries.map((e, i) => {
            // The step's reasoning once, under the last of its decisions (they come together).
            const next = entries[i + 1];
            const why = next && next.step_id === e.step_id ? null : whyContent(e);
            return [h('tr', { 'data-testid': 'why-entry', 'data-verdict': verdictOf(e.accepted), class: why ? 'has-why' : null },
              h('td', { class: 'mono why-time' }, t0 != null ? '+' + fmtDur(e.started_at_us - t0) : timeEl(e.started_at_us)),
              h('td', null, link(path('executions', execId, 'steps', e.step_id), null, e.step_name)),
              h('td', null, verdictBadge(e.accepted)),
              h('td', null, e.filter == null ? '—' : e.filter),
              h('td', { class: 'reason' }, e.reason == null ? '—' : e.reason),
              h('td', { class: 'num' }, fmtScore(e.score))),
            why && h('tr', { class: 'why-step', 'data-testid': 'why-step', 'data-step-id': String(e.step_id) },
              h('td', null), h('td', { colspan: '5' }, why))];
          })))),
      h('h2', null, 'Elsewhere'),
      elsewhere.length === 0 ? emptyEl('Not seen in other executions.') : elsewhereByExecution(elsewhere, d.candidate || cand));
  }

  async function pageCandidate(ctx, cand) {
    setTitle('Candidate ' + cand);
    const body = h('div', null, loadingEl());
    ctx.main.appendChild(body);
    const d = await api('/api/v1/candidates/' + enc(cand) + '?limit=200');
    if (!ctx.alive()) return;
    const entries = d.entries || [];
    body.replaceChildren(
      h('div', { class: 'page-head' }, h('h1', null, 'Candidate ', h('code', { 'data-testid': 'candidate' }, d.candidate || cand))),
      entries.length === 0 ? emptyEl('No decisions recorded for this candidate.') : elsewhereTable(entries, 'elsewhere-row'));
  }

  // --------------------------------------------------------------------- search

  async function pageSearch(ctx) {
    const q = (ctx.query.get('q') || '').trim();
    setTitle(q ? 'Search: ' + q : 'Search');
    const input = h('input', { type: 'search', name: 'q', id: 'search-page-input', value: q, 'aria-label': 'Search steps', placeholder: 'Step names, inputs, outputs, errors…' });
    const form = h('form', { class: 'search-page-form', role: 'search', action: '/search', method: 'get' },
      input, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Search'));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const v = input.value.trim();
      if (v) navigate('/search' + qs({ q: v }));
    });
    const results = h('div', { class: 'results' });
    ctx.main.append(h('div', { class: 'page-head' }, h('h1', null, 'Search')), form, results);
    if (!q) {
      results.appendChild(emptyEl('Type a word to search step names, inputs, outputs and errors.'));
      input.focus();
      return;
    }
    results.appendChild(loadingEl('Searching…'));
    const d = await api('/api/v1/search' + qs({ q, limit: 100 }));
    if (!ctx.alive()) return;
    const hits = d.hits || [];
    if (!hits.length) {
      results.replaceChildren(emptyEl('No steps match “' + q + '”.'));
      return;
    }
    results.replaceChildren(
      h('p', { class: 'muted' }, fmtInt(hits.length) + (hits.length === 1 ? ' hit' : ' hits')),
      h('ol', { class: 'hits' }, hits.map((hit) => h('li', null,
        link(path('executions', hit.execution_id, 'steps', hit.step_id), { class: 'hit', 'data-testid': 'search-hit' },
          badge(hit.status),
          h('span', { class: 'hit-step' }, hit.step_name),
          h('span', { class: 'hit-exec muted' }, 'in ', hit.execution_name),
          h('span', { class: 'hit-time muted' }, timeEl(hit.started_at_us)))))));
  }

  // ---------------------------------------------------------------------- stats

  const WINDOWS = [['1h', 'last hour'], ['24h', 'last 24 hours'], ['7d', 'last 7 days'], ['30d', 'last 30 days'], ['all', 'all time']];

  async function pageStats(ctx) {
    setTitle('Stats');
    const since = WINDOWS.some(([w]) => w === ctx.query.get('since')) ? ctx.query.get('since') : '24h';
    const name = ctx.query.get('name') || '';
    const sel = h('select', { id: 's-since', name: 'since', 'data-testid': 'stats-since' },
      WINDOWS.map(([w, label]) => h('option', { value: w, selected: w === since }, label)));
    const nameIn = h('input', { id: 's-name', name: 'name', type: 'text', value: name, placeholder: 'any', autocomplete: 'off', 'data-testid': 'stats-name' });
    const form = h('form', { class: 'filters', action: '/stats', method: 'get' },
      h('div', { class: 'field' }, h('label', { for: 's-since' }, 'Window'), sel),
      h('div', { class: 'field' }, h('label', { for: 's-name' }, 'Execution name'), nameIn),
      h('div', { class: 'field field-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'stats-apply' }, 'Apply')));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      navigate('/stats' + qs({ since: sel.value, name: nameIn.value }));
    });
    sel.addEventListener('change', () => form.requestSubmit());
    const body = h('div', null, loadingEl());
    ctx.main.append(h('div', { class: 'page-head' }, h('h1', null, 'Stats')), form, body);

    const d = await api('/api/v1/stats' + qs({ since: since === 'all' ? null : since, name }));
    if (!ctx.alive()) return;
    const steps = d.steps || [];
    const models = d.models || [];
    const parts = [];
    if (!steps.length) {
      parts.push(emptyEl('No steps in this window.'));
    } else {
      parts.push(h('h2', null, 'Step durations'), statsChart(steps));
      parts.push(h('div', { class: 'table-wrap' }, h('table', { class: 'table', 'data-testid': 'stats-table' },
        h('thead', null, h('tr', null, h('th', null, 'Step'), h('th', { class: 'num' }, 'Count'), h('th', { class: 'num' }, 'Error rate'),
          h('th', { class: 'num' }, 'p50'), h('th', { class: 'num' }, 'p95'), h('th', { class: 'num' }, 'max'))),
        h('tbody', null, steps.map((s) => h('tr', { 'data-testid': 'stats-row' },
          h('td', null, s.name),
          h('td', { class: 'num' }, fmtInt(s.count)),
          h('td', { class: 'num' + (s.errors > 0 ? ' rejected-text' : '') }, s.count ? trim((100 * s.errors) / s.count, 1) + ' %' : '—'),
          h('td', { class: 'num' }, fmtDur(s.p50_us)),
          h('td', { class: 'num' }, fmtDur(s.p95_us)),
          h('td', { class: 'num' }, fmtDur(s.max_us))))))));
    }
    parts.push(h('h2', null, 'Models'));
    parts.push(models.length === 0 ? emptyEl('No LLM calls in this window.')
      : h('div', { class: 'table-wrap' }, modelsTable(models, 'model-row', { testid: 'models-table' })));
    if (models.length) parts.push(h('p', { class: 'muted', 'data-testid': 'models-note' }, 'Cost: these tokens at the current prices, not what they cost when made; “—” when the model has no price.'));
    body.replaceChildren(...parts);
  }

  /** Horizontal grouped bars (p50, p95, max) per step name on a log axis. */
  function statsChart(rows) {
    const data = rows.slice().sort((a, b) => (b.p95_us || 0) - (a.p95_us || 0)).slice(0, 40);
    const series = [['p50', 'p50_us'], ['p95', 'p95_us'], ['max', 'max_us']];
    const W = 960;
    const labelW = 220;
    const valueW = 80;
    const plotW = W - labelW - valueW;
    const barH = 7;
    const gap = 2;
    const groupH = series.length * (barH + gap) + 10;
    const top = 26;
    const H = top + data.length * groupH + 6;
    let lo = Infinity;
    let hi = 1;
    for (const r of data) {
      for (const [, k] of series) {
        const v = r[k];
        if (typeof v === 'number' && v > 0) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      }
    }
    if (!isFinite(lo)) lo = 1;
    let lmin = Math.floor(Math.log10(Math.max(1, lo)));
    let lmax = Math.ceil(Math.log10(hi));
    if (lmax <= lmin) lmax = lmin + 1;
    const x = (v) => ((Math.log10(Math.max(v, Math.pow(10, lmin))) - lmin) / (lmax - lmin)) * plotW;

    const chart = svg('svg', {
      class: 'chart', viewBox: '0 0 ' + W + ' ' + H, width: '100%', role: 'img',
      'aria-label': 'Step durations p50, p95 and max on a logarithmic axis', preserveAspectRatio: 'xMinYMin meet',
    });
    const grid = svg('g', { class: 'chart-grid' });
    for (let e = lmin; e <= lmax; e++) {
      const gx = labelW + x(Math.pow(10, e));
      grid.appendChild(svg('line', { x1: gx, x2: gx, y1: top - 6, y2: H - 4 }));
      grid.appendChild(svg('text', { x: gx, y: 14, 'text-anchor': 'middle', class: 'chart-tick' }, fmtDur(Math.pow(10, e))));
    }
    chart.appendChild(grid);
    data.forEach((r, i) => {
      const y = top + i * groupH;
      const g = svg('g', { class: 'chart-group' });
      g.appendChild(svg('text', { x: labelW - 10, y: y + groupH / 2, 'text-anchor': 'end', 'dominant-baseline': 'middle', class: 'chart-label' },
        r.name.length > 32 ? r.name.slice(0, 31) + '…' : r.name));
      series.forEach(([label, key], j) => {
        const v = r[key];
        if (typeof v !== 'number' || v <= 0) return;
        const by = y + 3 + j * (barH + gap);
        const w = Math.max(2, x(v));
        g.appendChild(svg('rect', { x: labelW, y: by, width: w, height: barH, rx: 1.5, class: 'bar-' + label },
          svg('title', null, r.name + ' ' + label + ': ' + fmtDur(v))));
        if (label === 'max') g.appendChild(svg('text', { x: labelW + w + 6, y: by + barH / 2, 'dominant-baseline': 'middle', class: 'chart-value' }, fmtDur(v)));
      });
      g.appendChild(svg('title', null, r.name + ': p50 ' + fmtDur(r.p50_us) + ', p95 ' + fmtDur(r.p95_us) + ', max ' + fmtDur(r.max_us)));
      chart.appendChild(g);
    });
    const legend = h('div', { class: 'legend', 'aria-hidden': 'true' },
      series.map(([label]) => h('span', { class: 'legend-item' }, h('span', { class: 'swatch swatch-' + label }), label)),
      h('span', { class: 'muted' }, 'log scale' + (rows.length > data.length ? ' · top ' + data.length + ' by p95' : '')));
    return h('figure', { class: 'chart-box', 'data-testid': 'stats-chart' }, legend, chart);
  }

  // ----------------------------------------------------------------------- boot

  function boot() {
    const root = document.getElementById('app');
    if (!root) return;
    shell = buildShell(root);
    installGlobalHandlers();
    render();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
