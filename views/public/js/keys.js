// The Keys page follows a rotation without holding a request: it polls /keys/progress.json and moves
// the progress bar; when the rotation has ended (or stopped on an error) it reloads once, so the
// keyset, the KEK and the buttons show what is true now. No inline script: the CSP forbids it.
(function () {
  'use strict';
  var card = document.getElementById('rotation');
  if (!card || card.getAttribute('data-active') !== 'true') return;
  var bar = document.getElementById('rotation-progress');
  var live = document.getElementById('rotation-live');
  var INTERVAL = 1000;

  function text(id, value) {
    var el = document.getElementById(id);
    if (el) el.textContent = value === null || value === undefined || value === '' ? '-' : String(value);
  }

  function tick() {
    fetch('/keys/progress.json', { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status === 401 ? 'your session has ended: log in again' : 'HTTP ' + response.status);
        return response.json();
      })
      .then(function (data) {
        if (data.finished || data.failed) {
          live.textContent = data.failed ? 'The rotation stopped: reloading…' : 'The rotation has finished: reloading…';
          // Finished without an error: the page says so; else it shows the error and the resume button.
          var kind = card.getAttribute('data-kind');
          window.location.replace(window.location.pathname + (data.finished && !data.lastError && kind ? '?done=' + kind : ''));
          return;
        }
        bar.value = Math.round(data.fraction * 1000);
        bar.textContent = Math.round(data.fraction * 100) + ' %';
        if (data.rotation) {
          text('rotation-step', data.rotation.step);
          text('rotation-new-key-id', data.rotation.newKeyId);
        }
        text('rotation-summary', data.summary);
        live.className = 'live';
        live.textContent = 'Following the rotation · checked ' + new Date().toLocaleTimeString();
        setTimeout(tick, INTERVAL);
      })
      .catch(function (error) {
        live.className = 'live stale';
        live.textContent = 'Not following: ' + error.message;
        setTimeout(tick, INTERVAL * 3);
      });
  }

  setTimeout(tick, INTERVAL);
})();
