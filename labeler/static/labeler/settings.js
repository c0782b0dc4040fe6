/* Project settings: reorder classes by dragging rows (posts the whole new order, which the
   server validates), and keep the merge form from pointing a class at itself. The ↑ / ↓
   buttons work without this script. */
(function () {
  "use strict";
  const body = document.querySelector("#classes tbody");
  const form = document.getElementById("reorder-form");
  if (body && form) {
    let dragged = null;
    body.addEventListener("dragstart", (e) => {
      dragged = e.target.closest("tr");
      if (!dragged) return;
      dragged.classList.add("dragging");
      e.dataTransfer.effectAllowed = "move";
      e.dataTransfer.setData("text/plain", dragged.dataset.label);
    });
    body.addEventListener("dragover", (e) => {
      const over = e.target.closest("tr");
      if (!dragged || !over || over === dragged) return;
      e.preventDefault();
      const box = over.getBoundingClientRect();
      const after = e.clientY > box.top + box.height / 2;
      body.insertBefore(dragged, after ? over.nextSibling : over);
    });
    body.addEventListener("dragend", () => {
      if (!dragged) return;
      dragged.classList.remove("dragging");
      dragged = null;
      const order = Array.from(body.querySelectorAll("tr[data-label]"), (tr) => tr.dataset.label);
      const input = document.getElementById("reorder-order");
      if (order.join(",") === input.defaultValue) return;
      input.value = order.join(",");
      form.submit();
    });
    document.getElementById("reorder-order").defaultValue =
      Array.from(body.querySelectorAll("tr[data-label]"), (tr) => tr.dataset.label).join(",");
  }

  const source = document.getElementById("merge-source");
  const target = document.getElementById("merge-target");
  if (source && target) {
    // When the source becomes the target, move the target to another class.
    source.addEventListener("change", () => {
      if (target.value !== source.value) return;
      const other = Array.from(target.options).find((o) => o.value !== source.value);
      if (other) target.value = other.value;
    });
  }
})();
