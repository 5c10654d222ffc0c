// The state visualizer follows the lifecycle without a reload: it polls /inspect/state.json and,
// when the revision changes, redraws the facts, the history and both graphs (/inspect/graph.svg).
// The graph shown fits its frame; svg-pan-zoom (served from this origin) zooms and pans it.
// No inline script or style anywhere: the CSP allows scripts and styles from this origin only.
(function () {
  'use strict';
  var root = document.getElementById('inspect');
  if (!root) return;
  var revision = root.getAttribute('data-revision');
  var live = document.getElementById('live');
  var INTERVAL = 1000;
  var READABLE = 1.5;
  var VIEWS = ['compact', 'full'];
  var view = root.getAttribute('data-view') === 'full' ? 'full' : 'compact';
  // Per view: its svg-pan-zoom instance, and whether the reader moved it (then a redraw keeps the place).
  var zoomers = {};
  var moved = {};
  var programmatic = false;

  function text(id, value) {
    var el = document.getElementById(id);
    if (el) el.textContent = value === null || value === undefined || value === '' ? '-' : String(value);
  }

  // State paths and event names may break after a dot, a colon or an underscore, never inside a word.
  function breakable(el, value) {
    el.textContent = '';
    String(value === null || value === undefined || value === '' ? '-' : value)
      .split(/(?<=[.:_])/)
      .forEach(function (part) {
        el.appendChild(document.createTextNode(part));
        el.appendChild(document.createElement('wbr'));
      });
  }

  function renderPath(state) {
    var list = document.getElementById('current-path');
    list.textContent = '';
    String(state).split('.').forEach(function (key) {
      var li = document.createElement('li');
      var name = document.createElement('span');
      name.textContent = key;
      li.appendChild(name);
      list.appendChild(li);
    });
    breakable(document.getElementById('current-state'), state);
  }

  function renderAccepts(accepts) {
    var list = document.getElementById('accepts');
    list.textContent = '';
    accepts.forEach(function (type) {
      var li = document.createElement('li');
      var chip = document.createElement('span');
      chip.className = 'chip';
      chip.textContent = type;
      li.appendChild(chip);
      list.appendChild(li);
    });
    if (accepts.length === 0) {
      var none = document.createElement('li');
      none.className = 'none';
      none.textContent = 'none';
      list.appendChild(none);
    }
  }

  function renderLastError(error) {
    document.getElementById('last-error').hidden = !error;
    text('last-error-message', error && error.message);
    text('last-error-code', error && error.code);
    text('last-error-when', error && error.when);
  }

  function cell(tr, label, value, mono) {
    var td = document.createElement('td');
    td.setAttribute('data-label', label);
    if (mono) {
      td.className = 'mono';
      breakable(td, value);
    } else {
      td.textContent = String(value);
    }
    tr.appendChild(td);
    return td;
  }

  function renderHistory(rows, previousRevision) {
    var body = document.querySelector('#history tbody');
    body.textContent = '';
    rows.forEach(function (row) {
      var fresh = previousRevision !== null && row.revision > previousRevision;
      var tr = document.createElement('tr');
      tr.setAttribute('data-revision', row.revision);
      tr.className = (row.failure ? 'failed ' : '') + (fresh ? 'fresh' : '');
      cell(tr, 'Rev.', row.revision, false);
      var time = document.createElement('time');
      time.setAttribute('datetime', row.at);
      time.textContent = row.when;
      cell(tr, 'Time', '', false).appendChild(time);
      cell(tr, 'Source', row.source, false);
      cell(tr, 'Event', row.eventType, true);
      cell(tr, 'From', row.fromState, true);
      cell(tr, 'To', row.toState, true);
      body.appendChild(tr);
      if (!row.failure) return;
      var reasonRow = document.createElement('tr');
      reasonRow.className = 'failure-reason' + (fresh ? ' fresh' : '');
      reasonRow.setAttribute('data-revision', row.revision);
      var td = document.createElement('td');
      td.colSpan = 6;
      var reason = document.createElement('span');
      reason.className = 'reason';
      reason.textContent = 'Failed: ' + row.failure.message;
      var detail = document.createElement('span');
      detail.className = 'detail';
      detail.textContent = 'Error code ';
      var code = document.createElement('code');
      code.textContent = row.failure.code;
      detail.appendChild(code);
      td.appendChild(reason);
      td.appendChild(document.createTextNode(' '));
      td.appendChild(detail);
      reasonRow.appendChild(td);
      body.appendChild(reasonRow);
    });
  }

  // ── zoom and pan ──

  function frameOf(name) {
    return document.getElementById('graph-' + name);
  }

  function svgOf(name) {
    return frameOf(name).querySelector('svg');
  }

  function quietly(work) {
    programmatic = true;
    try {
      work();
    } finally {
      programmatic = false;
    }
  }

  // svg-pan-zoom writes its transform on the next animation frame; the fitted one is written at once
  // too, so that nothing (a screenshot, a resize) sees the drawing at its old size in between.
  function fit(zoomer, svg) {
    // A frame without size (hidden, or between two layouts) has no fit: the next resize brings one.
    var frame = svg && svg.getBoundingClientRect();
    if (!frame || frame.width === 0 || frame.height === 0) return;
    quietly(function () {
      zoomer.resize();
      zoomer.fit();
      zoomer.center();
    });
    var drawing = svg && svg.querySelector('.svg-pan-zoom_viewport');
    if (!drawing) return;
    var scale = zoomer.getSizes().realZoom;
    var pan = zoomer.getPan();
    drawing.setAttribute('transform', 'matrix(' + [scale, 0, 0, scale, pan.x, pan.y].join(',') + ')');
  }

  // Starts pan and zoom on the view's drawing, fitted to its frame, or where the reader had it.
  function attach(name, keep) {
    if (typeof window.svgPanZoom !== 'function') return;
    var frame = frameOf(name);
    var svg = frame && frame.querySelector('svg');
    if (!svg || frame.hidden) return;
    // Set through the CSSOM (the CSP refuses style attributes): svg-pan-zoom then leaves it alone.
    svg.style.overflow = 'hidden';
    var markMoved = function () {
      if (!programmatic) moved[name] = true;
    };
    quietly(function () {
      zoomers[name] = window.svgPanZoom(svg, {
        zoomEnabled: true,
        panEnabled: true,
        controlIconsEnabled: false,
        // The wheel scrolls the page; Ctrl and the wheel (a pinch on a touchpad) zoom, see below.
        mouseWheelZoomEnabled: false,
        dblClickZoomEnabled: true,
        fit: true,
        center: true,
        minZoom: 0.5,
        maxZoom: 40,
        zoomScaleSensitivity: 0.3,
        onZoom: markMoved,
        onPan: markMoved,
      });
      if (keep) {
        // The same size on screen as before (a new drawing's fit may differ), at the same place.
        var zoomer = zoomers[name];
        var fittedScale = zoomer.getSizes().realZoom / zoomer.getZoom();
        zoomer.zoom(keep.scale / fittedScale);
        zoomer.pan(keep.pan);
        moved[name] = true;
      }
    });
    document.getElementById('zoom-controls').hidden = false;
  }

  function detach(name) {
    var zoomer = zoomers[name];
    if (!zoomer) return null;
    var place = moved[name] ? { scale: zoomer.getSizes().realZoom, pan: zoomer.getPan() } : null;
    zoomer.destroy();
    delete zoomers[name];
    return place;
  }

  function zoomBy(factor) {
    var zoomer = zoomers[view];
    if (!zoomer) return;
    moved[view] = true;
    zoomer.zoomBy(factor);
  }

  function show(name) {
    view = name;
    root.setAttribute('data-view', name);
    VIEWS.forEach(function (other) {
      frameOf(other).hidden = other !== name;
    });
    document.querySelectorAll('.view-switch a').forEach(function (link) {
      if (link.getAttribute('data-view') === name) link.setAttribute('aria-current', 'true');
      else link.removeAttribute('aria-current');
    });
    if (!zoomers[name]) attach(name, null);
    else if (!moved[name]) fit(zoomers[name], svgOf(name));
    else zoomers[name].resize();
    if (window.history && window.history.replaceState) window.history.replaceState(null, '', '?view=' + name);
  }

  document.querySelectorAll('.view-switch a').forEach(function (link) {
    link.addEventListener('click', function (event) {
      event.preventDefault();
      show(link.getAttribute('data-view'));
    });
  });
  document.getElementById('zoom-in').addEventListener('click', function () {
    zoomBy(1.5);
  });
  document.getElementById('zoom-out').addEventListener('click', function () {
    zoomBy(1 / 1.5);
  });
  document.getElementById('zoom-fit').addEventListener('click', function () {
    var zoomer = zoomers[view];
    if (!zoomer) return;
    moved[view] = false;
    fit(zoomer, svgOf(view));
  });
  // Brings the current state to the middle of the frame, large enough to read its transitions' labels
  // (1.5 px a point; closer if the reader is closer): the whole machine fitted to a screen is a map.
  document.getElementById('zoom-current').addEventListener('click', function () {
    var zoomer = zoomers[view];
    var node = frameOf(view).querySelector('g.node.current');
    var scale = zoomer && zoomer.getSizes().realZoom;
    if (!node || !(scale > 0)) return;
    moved[view] = true;
    var frame = frameOf(view).getBoundingClientRect();
    var box = node.getBoundingClientRect();
    var x = box.left + box.width / 2 - frame.left;
    var y = box.top + box.height / 2 - frame.top;
    zoomer.zoomAtPointBy(Math.max(READABLE, scale) / scale, { x: x, y: y });
    zoomer.panBy({ x: frame.width / 2 - x, y: frame.height / 2 - y });
  });
  document.getElementById('graph').addEventListener(
    'wheel',
    function (event) {
      var zoomer = zoomers[view];
      if (!zoomer || !(event.ctrlKey || event.metaKey)) return;
      event.preventDefault();
      var box = frameOf(view).getBoundingClientRect();
      moved[view] = true;
      zoomer.zoomAtPointBy(event.deltaY < 0 ? 1.25 : 0.8, { x: event.clientX - box.left, y: event.clientY - box.top });
    },
    { passive: false },
  );
  // The frame follows the window's width: refit (or, once the reader moved the drawing, only resize).
  if (typeof ResizeObserver === 'function') {
    new ResizeObserver(function () {
      var zoomer = zoomers[view];
      if (!zoomer) return;
      if (moved[view]) zoomer.resize();
      else fit(zoomer, svgOf(view));
    }).observe(document.getElementById('graph'));
  }

  // ── following ──

  function redrawGraph(name) {
    return fetch('/inspect/graph.svg?view=' + name, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (response) {
        if (!response.ok) throw new Error('graph ' + response.status);
        return response.text();
      })
      .then(function (svgText) {
        var doc = new DOMParser().parseFromString(svgText, 'image/svg+xml');
        var svg = doc.documentElement;
        if (!svg || svg.nodeName.toLowerCase() !== 'svg') throw new Error('not an SVG');
        var place = detach(name);
        var frame = frameOf(name);
        frame.textContent = '';
        frame.appendChild(document.importNode(svg, true));
        if (name === view) attach(name, place);
        else moved[name] = false;
      });
  }

  function tick() {
    fetch('/inspect/state.json', { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status === 401 ? 'your session has ended: log in again' : 'HTTP ' + response.status);
        return response.json();
      })
      .then(function (data) {
        if (String(data.revision) === String(revision)) {
          live.className = 'live';
          live.textContent = 'Following changes · checked ' + new Date().toLocaleTimeString();
          return null;
        }
        var previous = revision === null || revision === '' ? null : Number(revision);
        renderPath(data.state);
        text('wizard-state', data.wizardState);
        text('scenario', data.scenario);
        text('revision', data.revision);
        text('reason', data.reason);
        renderAccepts(data.accepts);
        renderLastError(data.lastError);
        renderHistory(data.history, previous);
        // The revision counts as seen once the graphs show it too: a failed redraw is tried again.
        return Promise.all(VIEWS.map(redrawGraph)).then(function () {
          revision = String(data.revision);
          root.setAttribute('data-revision', revision);
          live.className = 'live';
          live.textContent = 'Following changes · checked ' + new Date().toLocaleTimeString();
        });
      })
      .catch(function (error) {
        live.className = 'live stale';
        live.textContent = 'Not following: ' + error.message;
      })
      .then(function () {
        setTimeout(tick, INTERVAL);
      });
  }

  attach(view, null);
  setTimeout(tick, INTERVAL);
})();
