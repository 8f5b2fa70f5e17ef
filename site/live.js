// codestats live updates: server-sent events (/live, /live/users/NAME) on top
// of the static pages. No framework, no build step; without JavaScript or
// EventSource the pages stay exactly as built.
//
// The numbers start from what the page was built with (data-* attributes)
// and grow with every pulse that arrives. Text from events (user, language
// and machine names) only ever goes in through textContent, each name in a
// <bdi> of its own, as the builder writes them, so that a name's bidi
// controls cannot reorder the text around it.
(function () {
  "use strict";
  if (!("EventSource" in window)) return;

  // Levels, as builder/src/level.rs: level L starts at 1600·L² XP.
  function levelStart(level) { return 1600 * level * level; }
  function level(xp) {
    var l = Math.floor(Math.sqrt(xp) / 40);
    while (levelStart(l + 1) <= xp) l++;
    while (l > 0 && levelStart(l) > xp) l--;
    return l;
  }
  // Percent into the level, and the part of it earned in the last 12 hours.
  function progress(xp, newXp) {
    var l = level(xp), start = levelStart(l), span = levelStart(l + 1) - start;
    var p = (xp - start) / span * 100;
    var n = Math.min(Math.min(newXp, xp - start) / span * 100, p);
    return { level: l, percent: p, fresh: n, toNext: levelStart(l + 1) - xp };
  }
  function width(p) { return Math.min(Math.max(p, 0), 100).toFixed(1) + "%"; }
  function num(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
  function int(el, name) { return parseInt(el.getAttribute(name), 10) || 0; }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function sum(xps) { return xps.reduce(function (s, x) { return s + x.xp; }, 0); }
  // "2024-05-01 12:34 UTC", as the builder writes times.
  function utcText(iso) {
    var d = new Date(iso);
    if (isNaN(d)) return iso;
    return d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function listen(url, onPulse) {
    var source = new EventSource(url);
    source.addEventListener("pulse", function (e) {
      var data;
      try { data = JSON.parse(e.data); } catch (err) { return; }
      if (data && Array.isArray(data.xps)) onPulse(data);
    });
    return source;
  }

  // A level bar (macros.html level_bar) and its label.
  function setBar(bar, p) {
    if (!bar) return;
    var old = bar.querySelector(".old"), fresh = bar.querySelector(".new");
    if (old) old.style.width = width(p.percent - p.fresh);
    if (fresh) fresh.style.width = width(p.fresh);
    bar.setAttribute("aria-label", "level " + p.level + ", " + Math.floor(p.percent) +
      "% of the way to level " + (p.level + 1));
  }

  // "+N" after an amount, added when missing.
  function setNew(parent, newXp) {
    var span = parent.querySelector(":scope > .new-xp");
    if (!span && newXp > 0) {
      parent.appendChild(document.createTextNode(" "));
      span = parent.appendChild(el("span", "new-xp"));
    }
    if (span) span.textContent = "+" + num(newXp);
  }

  function bump(node, xp) {
    var total = int(node, "data-xp") + xp, fresh = int(node, "data-new-xp") + xp;
    node.setAttribute("data-xp", total);
    node.setAttribute("data-new-xp", fresh);
    return { xp: total, newXp: fresh };
  }

  function profilePage(head) {
    var total = document.querySelector("[data-live-total]");
    var levels = document.querySelector("[data-live-languages]");
    var machines = document.querySelector("[data-live-machines]");
    var last = head.querySelector("[data-live-last]");
    var note = document.querySelector("[data-live-note]");
    var url = "/live/users/" + encodeURIComponent(head.getAttribute("data-live-user"));

    function updateTotal(xp) {
      if (!total) return;
      var t = bump(total, xp), p = progress(t.xp, t.newXp);
      total.querySelector("[data-live-level]").textContent = p.level;
      total.querySelector("[data-live-xp]").textContent = num(t.xp) + " XP";
      setNew(total.querySelector("h2"), t.newXp);
      setBar(total.querySelector(".bar"), p);
      total.querySelector("[data-live-progress]").textContent = Math.floor(p.percent) +
        "% of the way to level " + (p.level + 1) + ", " + num(p.toNext) + " XP to go.";
    }

    function languageRow(name) {
      var rows = document.querySelectorAll("[data-language]");
      for (var i = 0; i < rows.length; i++) {
        if (rows[i].getAttribute("data-language") === name) return rows[i];
      }
      if (!levels) return null;
      // A language new to this profile: a row like the builder's, without
      // a link (its page is made by the next build).
      var li = el("li");
      li.setAttribute("data-language", name);
      li.setAttribute("data-xp", "0");
      li.setAttribute("data-new-xp", "0");
      var row = li.appendChild(el("div", "row"));
      row.appendChild(el("bdi", "", name));
      row.appendChild(document.createTextNode(" "));
      row.appendChild(el("span", "meta"));
      var bar = li.appendChild(el("div", "bar"));
      bar.setAttribute("role", "img");
      bar.appendChild(el("span", "old"));
      bar.appendChild(el("span", "new"));
      levels.appendChild(li);
      return li;
    }

    function updateLanguage(name, xp) {
      var li = languageRow(name);
      if (!li) return;
      var t = bump(li, xp);
      var meta = li.querySelector(".meta");
      if (li.tagName === "LI") {
        var p = progress(t.xp, t.newXp);
        meta.textContent = "level " + p.level + " · " + num(t.xp) + " XP";
        setNew(meta, t.newXp);
        setBar(li.querySelector(".bar"), p);
      } else {
        meta.textContent = num(t.xp) + "\u00a0XP";
      }
    }

    function sortLanguages() {
      if (!levels) return;
      var rows = Array.prototype.slice.call(levels.children);
      rows.sort(function (a, b) {
        var d = int(b, "data-xp") - int(a, "data-xp");
        if (d) return d;
        var x = a.getAttribute("data-language"), y = b.getAttribute("data-language");
        return x < y ? -1 : x > y ? 1 : 0;
      });
      rows.forEach(function (r) { levels.appendChild(r); });
    }

    function updateMachine(name, xp) {
      if (!machines) return;
      var row = null, rows = machines.querySelectorAll("tr[data-machine]");
      for (var i = 0; i < rows.length; i++) {
        if (rows[i].getAttribute("data-machine") === name) row = rows[i];
      }
      if (!row) {
        row = machines.appendChild(el("tr"));
        row.setAttribute("data-machine", name);
        row.appendChild(el("td")).appendChild(el("bdi", "", name));
        row.appendChild(el("td"));
        row.appendChild(el("td"));
      }
      var t = bump(row, xp);
      row.cells[1].textContent = num(t.xp);
      row.cells[2].textContent = "";
      row.cells[2].appendChild(el("span", "new-xp", "+" + num(t.newXp)));
    }

    var arrived = 0;
    listen(url, function (pulse) {
      var xp = sum(pulse.xps);
      updateTotal(xp);
      pulse.xps.forEach(function (x) { updateLanguage(String(x.language), x.xp); });
      sortLanguages();
      updateMachine(String(pulse.machine), xp);
      if (last && pulse.coded_at) {
        last.setAttribute("datetime", pulse.coded_at);
        last.textContent = utcText(pulse.coded_at);
      }
      if (note) {
        arrived += xp;
        note.textContent = num(arrived) + " XP arrived since this page opened; " +
          "the profile fills in at the next build.";
        note.hidden = false;
      }
    });
  }

  function frontPage(box) {
    var totalEl = document.querySelector("[data-live-total-xp]");
    var xpmEl = box.querySelector("[data-live-xpm]");
    var list = box.querySelector("[data-live-activity]");
    var MAX_ITEMS = 20, WINDOW_MS = 60000;
    var recent = []; // [received at, xp]

    function xpPerMinute() {
      var now = Date.now();
      while (recent.length && now - recent[0][0] > WINDOW_MS) recent.shift();
      xpmEl.textContent = num(recent.reduce(function (s, r) { return s + r[1]; }, 0));
    }
    box.hidden = false;
    setInterval(xpPerMinute, 5000);

    listen("/live", function (pulse) {
      var xp = sum(pulse.xps);
      recent.push([Date.now(), xp]);
      xpPerMinute();
      if (totalEl) {
        var t = int(totalEl, "data-live-total-xp") + xp;
        totalEl.setAttribute("data-live-total-xp", t);
        totalEl.textContent = num(t);
      }
      var li = el("li");
      li.appendChild(el("strong")).appendChild(el("bdi", "", String(pulse.user)));
      li.appendChild(document.createTextNode(" "));
      li.appendChild(el("span", "new-xp", "+" + num(xp)));
      pulse.xps.forEach(function (x, i) {
        li.appendChild(document.createTextNode(i ? ", " : " "));
        li.appendChild(el("bdi", "", String(x.language)));
        li.appendChild(document.createTextNode(" " + num(x.xp)));
      });
      li.appendChild(document.createTextNode(" "));
      var when = el("time", "meta", new Date(pulse.coded_at).toLocaleTimeString());
      when.setAttribute("datetime", pulse.coded_at);
      li.appendChild(when);
      list.insertBefore(li, list.firstChild);
      while (list.children.length > MAX_ITEMS) list.removeChild(list.lastChild);
      var empty = box.querySelector("[data-live-empty]");
      if (empty) empty.hidden = true;
    });
  }

  var head = document.querySelector("[data-live-user]");
  if (head) profilePage(head);
  var box = document.querySelector("[data-live-front]");
  if (box) frontPage(box);
})();
