// storied web: progressive enhancement only; every page works without this script.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // history table: the from/to radio buttons fill the diff form's fields
  document.querySelectorAll("input[type=radio][data-target]").forEach(function (radio) {
    radio.addEventListener("change", function () {
      var field = document.getElementById(radio.dataset.target);
      if (field) { field.value = radio.value; }
    });
  });
  // folder listing: version counts and tags of the visible files, fetched after the page
  var listing = document.querySelector("table.listing[data-counts]");
  if (listing) {
    fetch(listing.dataset.counts, {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (found) {
        listing.querySelectorAll("tbody tr[data-name]").forEach(function (row) {
          var item = found[row.dataset.name];
          if (!item) { return; }
          var count = row.querySelector("td.count"), tags = row.querySelector("td.tags");
          if (count) { count.textContent = String(item.count); }
          if (tags) { tags.textContent = item.tags.join(", "); }
        });
      })
      .catch(function () {});
  }
});
