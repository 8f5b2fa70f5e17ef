// The account menu on the static pages. They are the same for everybody, so
// the header says "Log in · Sign up" until this finds the account cookie
// (set at login; it holds only the username and grants nothing). A profile
// shows its owner the links to edit it.
(function () {
  "use strict";
  var m = document.cookie.match(/(?:^|;\s*)codestats_account=([^;]*)/);
  if (!m) return;
  var name;
  try { name = decodeURIComponent(m[1]); } catch (e) { return; }
  if (!name) return;
  document.querySelectorAll("[data-signed-out]").forEach(function (e) { e.hidden = true; });
  document.querySelectorAll("[data-signed-in]").forEach(function (e) { e.hidden = false; });
  document.querySelectorAll("[data-account-name]").forEach(function (e) { e.textContent = name; });
  document.querySelectorAll("[data-owner]").forEach(function (e) {
    if (e.getAttribute("data-owner").toLowerCase() === name.toLowerCase()) e.hidden = false;
  });
})();
