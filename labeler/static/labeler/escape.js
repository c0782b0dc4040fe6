/* The one HTML-escaping helper of the pages. HTML that JavaScript builds as a string (ECharts
   tooltip formatters, whose result becomes innerHTML) passes every user string through it:
   class names, file names, usernames, messages from the server. Everywhere else the scripts
   build DOM nodes and set textContent, which needs no escaping. */
(function () {
  "use strict";
  const ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "`": "&#96;" };
  window.escapeHtml = function (value) {
    return String(value == null ? "" : value).replace(/[&<>"'`]/g, (c) => ENTITIES[c]);
  };
})();
