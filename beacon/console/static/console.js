/* Progressive enhancement for the Beacon console: every page works without this file. */
(function () {
  "use strict";

  // SMS segments, as carriers count them (mirrors channels/segments.py).
  var GSM = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var GSM_EXT = "^{}\\[~]|€\f";

  function units(text) {
    var chars = Array.from(text), gsm = true, i;
    for (i = 0; i < chars.length; i++) {
      if (GSM.indexOf(chars[i]) < 0 && GSM_EXT.indexOf(chars[i]) < 0) { gsm = false; break; }
    }
    return {
      encoding: gsm ? "GSM-7" : "UCS-2",
      sizes: chars.map(function (c) {
        if (gsm) { return GSM_EXT.indexOf(c) >= 0 ? 2 : 1; }
        return c.codePointAt(0) > 0xffff ? 2 : 1;
      })
    };
  }

  function pack(sizes, capacity) {
    var parts = 1, free = capacity;
    sizes.forEach(function (size) {
      if (size > free) { parts += 1; free = capacity; }
      free -= size;
    });
    return parts;
  }

  function segments(text) {
    var u = units(text), total = u.sizes.reduce(function (a, b) { return a + b; }, 0);
    var single = u.encoding === "GSM-7" ? 160 : 70, part = u.encoding === "GSM-7" ? 153 : 67;
    return { encoding: u.encoding, characters: total, segments: total <= single ? 1 : pack(u.sizes, part) };
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, key) { return values[key]; });
  }

  function compose() {
    var form = document.getElementById("compose");
    if (!form) { return; }
    var boxes = Array.prototype.slice.call(form.querySelectorAll("textarea[data-language]"));
    var missing = document.getElementById("missing"), checkIn = document.getElementById("check_in");
    function update() {
      var lacking = [];
      boxes.forEach(function (box) {
        var out = document.getElementById("seg_" + box.dataset.language);
        var text = box.value.trim();
        if (out) {
          // The check-in question is sent after the text: count it too.
          var s = segments(checkIn && checkIn.checked ? box.value + box.dataset.checkIn : box.value);
          out.textContent = text ? fill(out.dataset.template, s) : "";
          out.classList.toggle("long", s.segments > 2);
        }
        if (!text && Number(box.dataset.registered) > 0) {
          lacking.push(box.labels[0].querySelector("span").textContent);
        }
      });
      if (missing) {
        missing.textContent = lacking.length ? missing.dataset.label + " " + lacking.join(", ") : missing.dataset.none;
        missing.classList.toggle("has", lacking.length > 0);
      }
    }
    boxes.forEach(function (box) { box.addEventListener("input", update); });
    if (checkIn) { checkIn.addEventListener("change", update); }
    update();
  }

  function tallies() {
    var card = document.getElementById("tallies");
    if (!card) { return; }
    var status = document.getElementById("status"), live = document.getElementById("live");
    var labels = status ? JSON.parse(status.dataset.labels) : {};
    var quietRounds = 0;
    function show(data) {
      Object.keys(data.counts).forEach(function (key) {
        var cell = card.querySelector('[data-count="' + key + '"]');
        // A poll's small counts are withheld (null), as the published statistics withhold them.
        var shown = data.counts[key] === null ? (cell && cell.dataset.withheld) || "–" : String(data.counts[key]);
        if (cell && cell.textContent !== shown) { cell.textContent = shown; }
      });
      var total = data.counts.recipients || 0;
      ["safe", "need_help", "no_reply"].forEach(function (key) {
        var seg = card.querySelector('[data-share="' + key + '"]');
        if (seg && total) { seg.style.width = (100 * (data.counts[key] || 0) / total) + "%"; }
      });
      var news = document.getElementById("tally-news");
      if (news && data.counts.safe !== undefined) {
        var said = fill(news.dataset.template, data.counts);
        if (news.textContent !== said) { news.textContent = said; }  // announced only when an answer comes in
      }
      if (status && labels[data.status]) {
        status.textContent = labels[data.status];
        status.className = "badge s-" + data.status;
      }
    }
    function poll() {
      if (document.hidden) { setTimeout(poll, 3000); return; }
      fetch(card.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
        .then(function (data) {
          show(data);
          if (live) { live.hidden = false; }
          quietRounds = data.counts.no_reply === 0 && data.status !== "sending" ? quietRounds + 1 : 0;
          setTimeout(poll, quietRounds > 20 ? 15000 : 3000);
        })
        .catch(function () { if (live) { live.hidden = true; } setTimeout(poll, 10000); });
    }
    poll();
  }

  function confirmations() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    compose();
    tallies();
    confirmations();
  });
})();
