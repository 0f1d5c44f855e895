// ModelDesk's page behaviour, by event delegation (no inline scripts in fragments).
(function () {
  "use strict";
})();
