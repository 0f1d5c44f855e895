// ModelDesk's page behaviour, by event delegation (no inline scripts in fragments).
(function () {
  "use strict";

  // htmx keeps a snapshot of the page's HTML for the back button, and HTML holds the attributes a form was
  // rendered with, not what was typed since. Write the current values of forms marked data-keep-values into
  // their attributes first, so going back shows the search and filters beside the table they produced.
  document.addEventListener("htmx:beforeHistorySave", function () {
    document.querySelectorAll("form[data-keep-values]").forEach(function (form) {
      Array.prototype.forEach.call(form.elements, function (field) {
        if (field.tagName === "SELECT") {
          Array.prototype.forEach.call(field.options, function (option) {
            option.toggleAttribute("selected", option.selected);
          });
        } else if (field.tagName === "INPUT" && field.type !== "hidden") {
          field.setAttribute("value", field.value);
        }
      });
    });
  });
})();

// Pull form: a "Pick" button of the repo's file list fills the form instead of following its link (the link,
// for pages without JavaScript, opens the pull form prefilled with the same values).
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var pick = event.target.closest("[data-pick-filename]");
    if (!pick) {
      return;
    }
    var form = document.getElementById("pull-form");
    var filename = form && form.elements.namedItem("filename");
    if (!filename) {
      return;
    }
    event.preventDefault();
    var values = {
      repo: pick.dataset.pickRepo,
      revision: pick.dataset.pickRevision,
      filename: pick.dataset.pickFilename,
    };
    Object.keys(values).forEach(function (name) {
      var field = form.elements.namedItem(name);
      if (field && values[name] !== undefined) {
        field.value = values[name];
        field.dispatchEvent(new Event("input", { bubbles: true }));
      }
    });
    document.querySelectorAll("[data-repo-file].table-active").forEach(function (row) {
      row.classList.remove("table-active");
    });
    var row = pick.closest("[data-repo-file]");
    if (row) {
      row.classList.add("table-active");
    }
    filename.focus();
  });
})();

// Keyboard: Escape closes the newest dismissible alert (flash messages, the draft offer) and an open phone menu;
// Ctrl/Cmd+Enter in a textarea submits its form (plain Enter there is a new line, as people expect).
(function () {
  "use strict";

  function isTyping(element) {
    return element && (element.tagName === "TEXTAREA" || element.tagName === "SELECT" ||
      (element.tagName === "INPUT" && element.type !== "checkbox" && element.type !== "radio"));
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !event.defaultPrevented && !isTyping(event.target)) {
      var menu = document.querySelector(".navbar-collapse.show");
      if (menu && window.bootstrap) {
        window.bootstrap.Collapse.getOrCreateInstance(menu).hide();
        return;
      }
      var alerts = document.querySelectorAll(".alert-dismissible");
      var last = alerts[alerts.length - 1];
      if (last && window.bootstrap) {
        event.preventDefault();
        window.bootstrap.Alert.getOrCreateInstance(last).close();
      }
      return;
    }
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && event.target.tagName === "TEXTAREA") {
      var form = event.target.form;
      if (form) {
        event.preventDefault();
        form.requestSubmit();
      }
    }
  });

  // "Go back" on error pages, shown only when there is somewhere to go back to.
  document.querySelectorAll("[data-history-back]").forEach(function (button) {
    if (window.history.length > 1) {
      button.hidden = false;
    }
  });
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-history-back]")) {
      window.history.back();
    }
  });

  // After a refused save, put the cursor in the first field to fix.
  var invalid = document.querySelector("main form .is-invalid");
  if (invalid && typeof invalid.focus === "function") {
    invalid.focus({ preventScroll: true });
    invalid.scrollIntoView({ block: "center" });
  }
})();

// Form drafts: what is typed into a form marked data-draft-key is kept in this browser's localStorage while
// typing, and offered back ("Restore draft" / "Discard") when the form is opened again after a reload, a closed
// tab or a crash. A save that succeeds (the next page shows a success message) removes the draft.
(function () {
  "use strict";

  var PREFIX = "modeldesk:draft:";
  var PENDING = "modeldesk:draft-pending";
  var MAX_AGE_MS = 14 * 24 * 3600 * 1000;
  var SKIP = { csrfmiddlewaretoken: true, next: true };

  function storage(kind) {
    try {
      var store = window[kind];
      var probe = PREFIX + "probe";
      store.setItem(probe, "1");
      store.removeItem(probe);
      return store;
    } catch (error) {
      return null; // private mode or storage disabled: the form works, without drafts
    }
  }
  var local = storage("localStorage");
  var session = storage("sessionStorage");
  if (!local || !session) {
    return;
  }

  function read(key) {
    try {
      var draft = JSON.parse(local.getItem(key) || "null");
      if (draft && draft.values && Date.now() - draft.savedAt < MAX_AGE_MS) {
        return draft;
      }
    } catch (error) { /* a damaged draft is dropped below */ }
    local.removeItem(key);
    return null;
  }

  // The save that was submitted last: if this page says it succeeded, its draft is done with.
  var pending = session.getItem(PENDING);
  if (pending) {
    if (document.querySelector('[data-message-level="success"]')) {
      local.removeItem(pending);
      session.removeItem(PENDING);
    } else if (!document.querySelector("form[data-draft-key]")) {
      session.removeItem(PENDING);
    }
  }

  function valuesOf(form) {
    var values = {};
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!field.name || SKIP[field.name] || field.disabled || field.type === "submit" || field.type === "button") {
        return;
      }
      if (field.type === "checkbox" || field.type === "radio") {
        if (field.checked) {
          values[field.name] = field.value;
        }
        return;
      }
      values[field.name] = field.value;
    });
    return values;
  }

  // Equal as far as a person is concerned: the hidden version is bookkeeping, not something typed.
  function same(a, b) {
    var keys = Object.keys(a).concat(Object.keys(b));
    return keys.every(function (name) { return name === "version" || (a[name] || "") === (b[name] || ""); });
  }

  function apply(form, values) {
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!field.name || SKIP[field.name] || !(field.name in values)) {
        return;
      }
      if (field.type === "checkbox" || field.type === "radio") {
        field.checked = values[field.name] === field.value;
      } else {
        field.value = values[field.name];
      }
    });
  }

  function ago(savedAt) {
    var seconds = Math.max(0, Math.round((Date.now() - savedAt) / 1000));
    if (seconds < 60) { return "just now"; }
    if (seconds < 3600) { return Math.round(seconds / 60) + " min ago"; }
    if (seconds < 86400) { return Math.round(seconds / 3600) + " h ago"; }
    return Math.round(seconds / 86400) + " days ago";
  }

  document.querySelectorAll("form[data-draft-key]").forEach(function (form) {
    var key = PREFIX + form.dataset.draftKey;
    var initial = valuesOf(form);
    // A form sent back by the server after a refused save holds typed values that are not saved anywhere yet.
    var unsaved = form.hasAttribute("data-draft-unsaved");
    var offered = read(key);
    var timer = null;

    function save() {
      timer = null;
      var now = valuesOf(form);
      if (!unsaved && same(now, initial)) {
        local.removeItem(key); // nothing typed that is not saved already
      } else {
        try {
          local.setItem(key, JSON.stringify({ savedAt: Date.now(), values: now }));
        } catch (error) { /* storage full: keep working without a draft */ }
      }
    }

    form.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(save, 300);
    });
    form.addEventListener("change", function () {
      window.clearTimeout(timer);
      save();
    });
    form.addEventListener("submit", function () {
      window.clearTimeout(timer);
      save();
      session.setItem(PENDING, key);
    });

    if (!offered || same(offered.values, initial)) {
      return;
    }
    var template = document.getElementById("draft-offer");
    if (!template) {
      return;
    }
    var offer = template.content.firstElementChild.cloneNode(true);
    offer.querySelector("[data-draft-when]").textContent = ago(offered.savedAt);
    var changedVersion = offer.querySelector("[data-draft-version]");
    if (changedVersion) {
      var draftVersion = offered.values.version;
      changedVersion.hidden = !draftVersion || !initial.version || draftVersion === initial.version;
    }
    offer.addEventListener("click", function (event) {
      var action = event.target.closest("[data-draft-action]");
      if (!action) {
        return;
      }
      if (action.dataset.draftAction === "restore") {
        // The draft keeps the version it was typed against: if someone saved since, the save is refused and
        // shows their change instead of silently overwriting it.
        apply(form, offered.values);
        save();
        var first = form.querySelector("input:not([type=hidden]), textarea, select");
        if (first) { first.focus(); }
      } else {
        local.removeItem(key);
      }
      offer.remove();
    });
    form.parentNode.insertBefore(offer, form);
  });
})();

// A poll answered "not modified" (the server's 304, which the browser hands over as its cached copy) carries the
// same ETag as the last one: leave the page alone instead of swapping in an identical fragment.
(function () {
  "use strict";

  var shown = {};
  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail;
    var target = detail.target;
    var etag = detail.xhr && detail.xhr.getResponseHeader("ETag");
    if (!etag || !target || !target.id || detail.xhr.status !== 200) {
      return;
    }
    if (shown[target.id] === etag) {
      detail.shouldSwap = false;
      return;
    }
    shown[target.id] = etag;
  });
})();

// Alias form: "Apply" a preset fills the parameter fields it sets from the preset's values (asked of the server,
// which writes them as the form's inputs hold them) and saves nothing. Without JavaScript the button posts the
// form back and the server answers with the same fields filled.
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-preset-apply]");
    if (!button || !button.form) {
      return;
    }
    var form = button.form;
    var select = form.elements.namedItem("preset");
    var option = select && select.options[select.selectedIndex];
    var status = form.querySelector("[data-preset-status]");
    if (!option || !option.dataset.valuesUrl) {
      event.preventDefault();
      if (status) {
        status.textContent = "Choose a preset to apply.";
      }
      return;
    }
    event.preventDefault();
    fetch(option.dataset.valuesUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(response.status);
        }
        return response.json();
      })
      .then(function (body) {
        var filled = [];
        Object.keys(body.values).forEach(function (name) {
          var field = form.elements.namedItem(name);
          if (field) {
            field.value = body.values[name];
            field.dispatchEvent(new Event("input", { bubbles: true }));
            field.dispatchEvent(new Event("change", { bubbles: true }));
            filled.push(name);
          }
        });
        if (status) {
          status.textContent = "Applied preset " + body.preset + ": " + (filled.join(", ") || "no fields") +
            " filled in. Nothing is saved until you save.";
        }
      })
      .catch(function () {
        // The server can still do it: post the form back with the button, as without JavaScript.
        form.requestSubmit(button);
      });
  });
})();

// Alias list bulk actions: "select all on this page" ticks every row's box; once the whole page is ticked, the
// bar offers "select all N matching" (as the Django admin's select-across). The boxes and the bar arrive with the
// table fragment, so everything is found afresh after each htmx swap. Without JavaScript the boxes and the
// select-across box still post the same form.
(function () {
  "use strict";

  function rows(form) {
    return document.querySelectorAll('input[data-bulk-row][form="' + form.id + '"]');
  }

  function update(form) {
    var boxes = Array.prototype.slice.call(rows(form));
    var ticked = boxes.filter(function (box) { return box.checked; }).length;
    var across = form.querySelector("[data-bulk-across]");
    var offer = form.querySelector("[data-bulk-across-offer]");
    var count = form.querySelector("[data-bulk-count]");
    var total = parseInt(form.dataset.bulkTotal, 10) || 0;
    var pageBox = document.querySelector("#alias-rows [data-bulk-page]");
    var all = boxes.length > 0 && ticked === boxes.length;
    if (pageBox) {
      pageBox.checked = all;
      pageBox.indeterminate = ticked > 0 && !all;
    }
    if (across && !all) {
      across.checked = false;
    }
    if (offer) {
      offer.hidden = !(all && total > boxes.length);
    }
    if (count) {
      if (across && across.checked) {
        count.textContent = "All " + total + " matching selected";
      } else if (ticked) {
        count.textContent = ticked + " selected";
      } else {
        count.textContent = "Tick aliases to act on them";
      }
    }
  }

  function init() {
    document.querySelectorAll("form[data-bulk-form]").forEach(update);
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    var form = document.querySelector("form[data-bulk-form]");
    if (!form) {
      return;
    }
    if (target.matches("[data-bulk-page]")) {
      rows(form).forEach(function (box) { box.checked = target.checked; });
    } else if (target.matches("[data-bulk-across]")) {
      if (target.checked) {
        rows(form).forEach(function (box) { box.checked = true; });
      }
    } else if (!target.matches("[data-bulk-row]")) {
      return;
    }
    update(form);
  });

  document.addEventListener("htmx:afterSettle", init);
  init();
})();
