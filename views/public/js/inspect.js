// The state visualizer follows the lifecycle without a reload: it polls /inspect/state.json and,
// when the revision changes, redraws the facts, the history and the graph (/inspect/graph.svg).
// No inline script anywhere: the CSP allows scripts from this origin only.
(function () {
  'use strict';
  var root = document.getElementById('inspect');
  if (!root) return;
  var revision = root.getAttribute('data-revision');
  var live = document.getElementById('live');
  var INTERVAL = 1000;

  function text(id, value) {
    var el = document.getElementById(id);
    if (el) el.textContent = value === null || value === undefined || value === '' ? '-' : String(value);
  }

  function renderAccepts(accepts) {
    var el = document.getElementById('accepts');
    el.textContent = '';
    accepts.forEach(function (type) {
      var span = document.createElement('span');
      span.textContent = type;
      el.appendChild(span);
    });
  }

  function renderHistory(rows, previousRevision) {
    var body = document.querySelector('#history tbody');
    body.textContent = '';
    rows.forEach(function (row) {
      var tr = document.createElement('tr');
      if (previousRevision !== null && row.revision > previousRevision) tr.className = 'fresh';
      [row.revision, row.at, row.source, row.eventType, row.fromState, row.toState].forEach(function (value, i) {
        var td = document.createElement('td');
        if (i >= 3) td.className = 'mono';
        td.textContent = String(value);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  // The graph is large: bring the current state into the middle of its frame.
  function centerOnCurrent() {
    var container = document.getElementById('graph');
    var node = container && container.querySelector('g.node.current');
    if (!node) return;
    var frame = container.getBoundingClientRect();
    var box = node.getBoundingClientRect();
    container.scrollLeft += box.left + box.width / 2 - (frame.left + frame.width / 2);
    container.scrollTop += box.top + box.height / 2 - (frame.top + frame.height / 2);
  }

  function redrawGraph() {
    return fetch('/inspect/graph.svg', { credentials: 'same-origin', cache: 'no-store' })
      .then(function (response) {
        if (!response.ok) throw new Error('graph ' + response.status);
        return response.text();
      })
      .then(function (svgText) {
        var doc = new DOMParser().parseFromString(svgText, 'image/svg+xml');
        var svg = doc.documentElement;
        if (!svg || svg.nodeName.toLowerCase() !== 'svg') throw new Error('not an SVG');
        var container = document.getElementById('graph');
        container.textContent = '';
        container.appendChild(document.importNode(svg, true));
        centerOnCurrent();
      });
  }

  function tick() {
    fetch('/inspect/state.json', { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status === 401 ? 'your session has ended: log in again' : 'HTTP ' + response.status);
        return response.json();
      })
      .then(function (data) {
        var changed = String(data.revision) !== String(revision);
        var previous = revision === null || revision === '' ? null : Number(revision);
        live.className = 'live';
        live.textContent = 'Following changes · checked ' + new Date().toLocaleTimeString();
        if (!changed) return null;
        revision = String(data.revision);
        root.setAttribute('data-revision', revision);
        text('current-state', data.state);
        text('wizard-state', data.wizardState);
        text('scenario', data.scenario);
        text('revision', data.revision);
        text('reason', data.reason);
        renderAccepts(data.accepts);
        renderHistory(data.history, previous);
        return redrawGraph();
      })
      .catch(function (error) {
        live.className = 'live stale';
        live.textContent = 'Not following: ' + error.message;
      })
      .then(function () {
        setTimeout(tick, INTERVAL);
      });
  }

  centerOnCurrent();
  setTimeout(tick, INTERVAL);
})();
