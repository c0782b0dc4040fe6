/* Class colours: templates put them in data-color, set here as the --c custom property through
   the CSSOM, because the Content-Security-Policy blocks inline style attributes. */
(function () {
  "use strict";
  document.querySelectorAll("[data-color]").forEach((el) => el.style.setProperty("--c", el.dataset.color));
})();
