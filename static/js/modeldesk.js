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
