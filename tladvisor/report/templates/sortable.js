// Click a column header of a table.sortable to sort by it; click again to reverse. Cells may carry
// data-sort (the raw number) so "1.0e-04" and "1,234" sort by value; blanks and "—" stay last either way.
(function () {
  function key(cell) {
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    var number = Number(raw);
    return raw !== "" && isFinite(number) ? number : raw.toLowerCase();
  }
  function sortBy(table, header, column) {
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("thead th").forEach(function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row) { return [key(row.cells[column]), row]; });
    rows.sort(function (a, b) {
      if (typeof a[0] !== typeof b[0]) { return typeof a[0] === "number" ? -1 : 1; }
      var order = a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
      return ascending ? order : -order;
    });
    rows.forEach(function (pair) { body.appendChild(pair[1]); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (header, column) {
      header.setAttribute("tabindex", "0");
      header.setAttribute("role", "button");
      header.addEventListener("click", function () { sortBy(table, header, column); });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(table, header, column); }
      });
    });
  });
})();
