/* The HTML views' maps (geo/templates/): the page's features from its data block (#view-data), drawn with
   the service's own Leaflet on a canvas, with no basemap (the pages' policy allows no tile host). */
(function () {
  "use strict";

  var AFGHANISTAN = [[29.3, 60.5], [38.5, 74.9]];

  function data() {
    var element = document.getElementById("view-data");
    return element ? JSON.parse(element.textContent) : null;
  }

  // A tooltip's content as a text node: names are the data's, never markup.
  function textNode(text) {
    var span = document.createElement("span");
    span.textContent = text;
    return span;
  }

  function draw(container, info) {
    var map = L.map(container, {preferCanvas: true, attributionControl: false, minZoom: 3, maxZoom: 18});
    // A view before any layer: Leaflet cannot place a shape on a map with none. Afghanistan, which is also
    // what a page with nothing to show keeps.
    map.fitBounds(AFGHANISTAN);
    var colours = info.colours || {};
    // The provinces' outlines stand in for a basemap: drawn first, under the features, not clickable.
    if (info.outlines && info.outlines.length) {
      L.geoJSON({type: "GeometryCollection", geometries: info.outlines.filter(Boolean)}, {
        interactive: false, style: {color: "#8796a5", weight: 1, fillColor: "#fbfcfd", fillOpacity: 1}
      }).addTo(map);
    }
    var layer = L.geoJSON(info.features, {
      style: function (feature) {
        var colour = colours[feature.properties.status] || "#1f6fa8";
        return {color: colour, weight: 3, fillOpacity: 0.25};
      },
      pointToLayer: function (feature, latlng) {
        var colour = colours[feature.properties.status] || "#1f6fa8";
        return L.circleMarker(latlng, {radius: 7, color: "#fff", weight: 2, fillColor: colour, fillOpacity: 0.95});
      },
      onEachFeature: function (feature, item) {
        item.bindTooltip(textNode(feature.properties.name));
        item.on("click", function () {
          var href = feature.properties.href;
          if (typeof href === "string" && /^https?:\/\//i.test(href)) window.location.assign(href);
        });
      }
    }).addTo(map);
    var bounds = layer.getBounds();
    if (info.bbox) {
      var box = L.latLngBounds([info.bbox[1], info.bbox[0]], [info.bbox[3], info.bbox[2]]);
      L.rectangle(box, {color: "#0a58b5", weight: 2, fillOpacity: 0.08}).addTo(map);
      bounds = bounds.isValid() ? bounds.extend(box) : box;
    }
    // A lone point is shown with its surroundings (zoom 9), not at street level.
    if (bounds.isValid()) map.fitBounds(bounds, {padding: [20, 20], maxZoom: 9, animate: false});
    return {map: map, layer: layer};
  }

  function fixed(value) { return String(Math.round(value * 10000) / 10000); }

  // The filter form: "Use the map view" writes the map's bounds into the bbox field; empty fields
  // are left out on submit, so the URL holds the same parameters as the JSON would.
  function wireForm(view) {
    var button = document.getElementById("use-view"), input = document.getElementById("filter-bbox");
    if (button && input && view) {
      button.addEventListener("click", function () {
        var b = view.map.getBounds();
        input.value = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(fixed).join(",");
      });
    }
    var form = input ? input.form : null;
    if (form) {
      form.addEventListener("submit", function () {
        Array.prototype.forEach.call(form.elements, function (el) {
          if (el.name && el.value === "" && !el.disabled) el.disabled = true;
        });
      });
    }
  }

  function start() {
    var container = document.getElementById("view-map"), info = data(), view = null;
    if (container && info && window.L) view = draw(container, info);
    wireForm(view);
    window.GeoView = {view: view, ready: true};
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
