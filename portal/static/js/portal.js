// The portal's own script: CSRF header for htmx, request errors, territory maps.
(function () {
  "use strict";

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
