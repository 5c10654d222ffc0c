// The login lockout's end in the browser's own time zone, with the time left counting down. The
// server renders the same moment in UTC, which stays when scripts are off. No inline script: the CSP
// forbids it.
(function () {
  'use strict';
  var element = document.getElementById('lock-countdown');
  if (!element) return;
  var until = Date.parse(element.getAttribute('data-until') || '');
  if (isNaN(until)) return;
  var local = new Date(until).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  var zone = '';
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone || '';
  } catch (e) {
    zone = '';
  }
  function pad(n) {
    return n < 10 ? '0' + n : String(n);
  }
  function tick() {
    var left = Math.ceil((until - Date.now()) / 1000);
    if (left <= 0) {
      element.textContent = 'The lock has ended: you can log in again.';
      return;
    }
    var minutes = Math.floor(left / 60);
    element.textContent =
      'The account is locked until ' + local + (zone ? ' (' + zone + ' time)' : ' (your local time)') + ': ' + minutes + ':' + pad(left % 60) + ' left.';
    setTimeout(tick, 1000);
  }
  tick();
})();
