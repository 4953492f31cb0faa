// The portal's own script: CSRF header for htmx, request errors, row editors, focus
// after a table is redrawn, territory maps. The Content-Security-Policy allows scripts
// from our own files only, so no handler is ever written as a string in a page.
(function () {
  "use strict";

  // htmx never turns attribute text into code (hx-on, js: values, trigger filters).
  if (typeof htmx !== "undefined") {
    htmx.config.allowEval = false;
    htmx.config.allowScriptTags = false;
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // Flask-WTF checks this header on every unsafe request htmx sends.
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRFToken"] = csrfToken();
  });

  // htmx leaves the page unchanged on an error answer; say so instead of nothing.
  function showRequestError(text) {
    var messages = document.getElementById("messages");
    if (!messages) {
      return;
    }
    var message = document.createElement("p");
    message.className = "message message-error";
    message.setAttribute("role", "alert");
    message.textContent = text;
    messages.replaceChildren(message);
  }

  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    if (status === 401) {
      return; // htmx follows the HX-Redirect header to the sign-in page.
    }
    if (status === 400) {
      showRequestError("The page was out of date, so nothing was changed. Reload the page and try again.");
    } else if (status === 403 || status === 404) {
      showRequestError("That is not available to your account any more. Reload the page.");
    } else {
      showRequestError("The portal could not answer (error " + status + "). Nothing was changed; try again in a moment.");
    }
  });

  document.addEventListener("htmx:sendError", function () {
    showRequestError("The portal could not be reached. Check your connection and try again.");
  });

  // Row editors (tiers, reward rules, conditions): a button marked data-remove-row
  // removes the row it sits in, then announces data-removed-event when it has one.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-remove-row]");
    var row = button && button.closest(button.dataset.removeRow);
    if (!row) {
      return;
    }
    row.remove();
    if (button.dataset.removedEvent && typeof htmx !== "undefined") {
      htmx.trigger(document.body, button.dataset.removedEvent);
    }
  });

  // A select marked data-suggest-into offers the datalist data-suggest-list in its
  // row's field of that name while its value is data-suggest-when, and none otherwise.
  document.addEventListener("change", function (event) {
    var select = event.target.closest("select[data-suggest-into]");
    var row = select && select.closest("tr");
    var input = row && row.querySelector('[name="' + select.dataset.suggestInto + '"]');
    if (!input) {
      return;
    }
    if (select.value === select.dataset.suggestWhen) {
      input.setAttribute("list", select.dataset.suggestList);
    } else {
      input.removeAttribute("list");
    }
  });

  // After a fragment is redrawn, focus stays where it was: htmx gives it to the new
  // element of the same id (sort links and filters have ids); when there is none, the
  // redrawn fragment itself takes focus rather than leaving it on the page's body.
  var focusWasIn = {};
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id && target.contains(document.activeElement)) {
      focusWasIn[target.id] = true;
    }
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    var id = event.detail.target && event.detail.target.id;
    if (!id || !focusWasIn[id]) {
      return;
    }
    delete focusWasIn[id];
    var fragment = document.getElementById(id);
    var active = document.activeElement;
    if (!fragment || (active && active !== document.body)) {
      return;
    }
    if (!fragment.hasAttribute("tabindex")) {
      fragment.setAttribute("tabindex", "-1");
    }
    fragment.focus({ preventScroll: true });
  });

  var PALETTE = ["#0f766e", "#2563eb", "#b45309", "#7c3aed", "#be123c", "#15803d",
                 "#0369a1", "#a16207", "#9333ea", "#c2410c", "#0e7490", "#4d7c0f"];

  function featureStyle(feature, index) {
    // A shape may bring its own colour (the managers' map colours by attainment).
    var own = feature.properties && feature.properties.colour;
    var colour = own || PALETTE[index % PALETTE.length];
    return { color: colour, weight: 1.5, fillColor: colour, fillOpacity: own ? 0.55 : 0.25 };
  }

  var ACCOUNT_STYLE = { radius: 3, color: "#111827", weight: 0.5, fillColor: "#f59e0b", fillOpacity: 0.85 };

  function isAccount(feature) {
    return Boolean(feature.properties && feature.properties.kind === "account");
  }

  function tooltipText(feature) {
    var properties = feature.properties || {};
    if (isAccount(feature)) { return properties.name || "Account"; }
    var owner = properties.partner ? " · " + properties.partner : "";
    var attainment = properties.attainment_text ? " · attainment " + properties.attainment_text : "";
    return (properties.name || "Territory") + owner + attainment;
  }

  function drawMap(element, collection) {
    // No tile layer: the shapes are drawn on the plain background of the map.
    var map = L.map(element, { attributionControl: false, zoomSnap: 0.25, scrollWheelZoom: false });
    var index = 0;
    var layer = L.geoJSON(collection, {
      style: function (feature) {
        return isAccount(feature) ? ACCOUNT_STYLE : featureStyle(feature, index++);
      },
      pointToLayer: function (feature, latlng) { return L.circleMarker(latlng, ACCOUNT_STYLE); },
      onEachFeature: function (feature, shape) {
        // As an element with text, never as HTML: names come from imported files.
        var label = document.createElement("span");
        label.textContent = tooltipText(feature);
        shape.bindTooltip(label, { sticky: true });
        // A shape with an address opens it when clicked.
        if (feature.properties && feature.properties.url) {
          shape.on("click", function () { window.location.assign(feature.properties.url); });
        }
      }
    }).addTo(map);
    map.fitBounds(layer.getBounds(), { padding: [16, 16] });
  }

  function showMapNote(element, text) {
    var note = element.querySelector(".map-note") || document.createElement("p");
    note.className = "map-note";
    note.textContent = text;
    element.appendChild(note);
  }

  function loadMap(element) {
    fetch(element.dataset.geojsonUrl, { credentials: "same-origin", headers: { Accept: "application/geo+json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (collection) {
        if (!collection.features || collection.features.length === 0) {
          showMapNote(element, "No shape is on file: accounts come here through rules on postal codes, states or other fields.");
          element.classList.add("map-empty");
          return;
        }
        element.replaceChildren();
        drawMap(element, collection);
      })
      .catch(function () {
        showMapNote(element, "The map could not be loaded. Reload the page to try again.");
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (typeof L === "undefined") {
      return;
    }
    document.querySelectorAll(".map[data-geojson-url]").forEach(loadMap);
  });
})();
