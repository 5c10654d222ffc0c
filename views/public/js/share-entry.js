// Recovery-share fields are password inputs so that Chromium keeps no copy of the share in its
// session files (it drops the POST body of a form with a password field). "Show" lets the holder
// check what they typed; the field turns back into a password input before the form is sent.
(function () {
  for (const toggle of document.querySelectorAll('input[data-show-share]')) {
    const field = document.getElementById(toggle.getAttribute('data-show-share'));
    if (!field) continue;
    toggle.addEventListener('change', function () {
      field.type = toggle.checked ? 'text' : 'password';
    });
    field.form.addEventListener('submit', function () {
      field.type = 'password';
    });
  }
})();
