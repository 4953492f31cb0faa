// The imports page: offer the chosen file's CSV header (or the first feature's GeoJSON
// properties) as suggestions in the column fields; the file is only read in the browser.
(function () {
  "use strict";

  function csvHeader(text) {
    var line = text.replace(/^\ufeff/, "").split(/\r?\n/)[0] || "";
    var names = [], current = "", quoted = false;
    for (var i = 0; i < line.length; i++) {
      var c = line[i];
      if (c === '"') { quoted = !quoted; }
      else if (c === "," && !quoted) { names.push(current.trim()); current = ""; }
      else { current += c; }
    }
    names.push(current.trim());
    return names.filter(function (name) { return name; });
  }

  function geojsonProperties(text) {
    try {
      var parsed = JSON.parse(text);
      var feature = parsed.features ? parsed.features[0] : parsed;
      var names = Object.keys((feature && feature.properties) || {});
      return feature && feature.id !== undefined ? names.concat(["id"]) : names;
    } catch (error) {
      return [];
    }
  }

  document.querySelectorAll("input[data-columns]").forEach(function (input) {
    input.addEventListener("change", function () {
      var list = document.getElementById(input.dataset.columns);
      var file = input.files && input.files[0];
      if (!list || !file) { return; }
      var isCsv = input.accept.indexOf(".csv") !== -1;
      var reader = new FileReader();
      reader.onload = function () {
        var names = isCsv ? csvHeader(reader.result) : geojsonProperties(reader.result);
        list.replaceChildren.apply(list, names.map(function (name) {
          var option = document.createElement("option");
          option.value = name;
          return option;
        }));
      };
      reader.readAsText(isCsv ? file.slice(0, 65536) : file);
    });
  });
})();
