/* The web map's own code (hand-written; no package does this): it fills the layers that Folium laid
 * out, from the API or from data embedded by `geo map`, and adds the filters, the choropleth switch,
 * the legend, the project cards, the "zoom to Salang" control and the download links.
 *
 * Safety: every value that comes from the data reaches the page through textContent, DOM properties or
 * setAttribute on fixed attribute names, never as HTML; no HTML string is built here at all. Styles are
 * set as style properties, never as style attributes (the page's Content-Security-Policy forbids those).
 */
(function () {
  "use strict";

  // The filters (status, category, province, ...) come from the project schema, in cfg.filter_fields:
  // {name, title, values (null: the ids of the features of the layer `values_of`), marks}.
  function filterNames(cfg) {
    return cfg.filter_fields.map(function (field) { return field.name; });
  }
  var BLUES = ["#deebf7", "#9ecae1", "#6baed6", "#3182bd", "#08519c"];
  var ORANGES = ["#fee6ce", "#fdae6b", "#fd8d3c", "#e6550d", "#a63603"];

  function label(value) {
    return String(value === null || value === undefined ? "" : value).replace(/_/g, " ");
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined) return;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else node.setAttribute(key, String(value));
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function svg(tag, attrs) {
    var node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, String(attrs[key])); });
    return node;
  }

  function money(value) {
    var v = Number(value) || 0;
    if (v >= 1e9) return "USD " + (v / 1e9).toFixed(v >= 1e10 ? 0 : 1) + " bn";
    if (v >= 1e6) return "USD " + (v / 1e6).toFixed(v >= 1e7 ? 0 : 1) + " M";
    if (v >= 1e3) return "USD " + Math.round(v / 1e3) + " k";
    return "USD " + Math.round(v);
  }

  function safeUrl(value) {
    return typeof value === "string" && /^https?:\/\//i.test(value) ? value : null;
  }

  function link(href, text) {
    return el("a", {href: href, text: text, target: "_blank", rel: "noopener noreferrer"});
  }

  function swatch(colour, cls) {
    var node = el("span", {class: cls || "geo-swatch"});
    node.style.background = colour;
    return node;
  }

  function iconSvg(icon, size) {
    var attrs = {viewBox: icon.viewBox, "aria-hidden": "true"};
    if (size) { attrs.width = size; attrs.height = size; }  // else the stylesheet sizes it
    var node = svg("svg", attrs);
    node.appendChild(svg("path", {d: icon.d}));
    return node;
  }

  /* ---------- where the data comes from ---------- */

  function apiSource(cfg) {
    function items(id, params) {
      var query = new URLSearchParams(params);
      query.set("limit", String(cfg.limit));
      return cfg.urls.items.replace("{id}", encodeURIComponent(id)) + "?" + query.toString();
    }
    function getJson(url) {
      return fetch(url, {headers: {Accept: "application/geo+json, application/json"}}).then(function (r) {
        if (!r.ok) throw new Error(url + " answered " + r.status);
        return r.json();
      });
    }
    function all(url) {
      // Follow the OGC `next` links, so any number of features arrives in pages.
      var features = [];
      function page(next) {
        return getJson(next).then(function (doc) {
          features = features.concat(doc.features || []);
          var more = (doc.links || []).filter(function (l) { return l.rel === "next"; })[0];
          return more ? page(more.href) : features;
        });
      }
      return page(url);
    }
    return {
      provinces: function () { return all(items("provinces", {})); },
      salang: function () { return all(items("salang", {})); },
      projects: function (params) { return all(items("projects", params)); },
      stats: function (params) { return getJson(cfg.urls.stats + "?" + new URLSearchParams(params)); }
    };
  }

  function embeddedSource(data, cfg) {
    var names = filterNames(cfg);
    function pass(feature, params) {
      var p = feature.properties || {};
      return names.every(function (key) {
        return !params[key] || params[key].split(",").indexOf(String(p[key])) >= 0;
      });
    }
    function chosen(params) {
      return data.projects.features.filter(function (f) { return pass(f, params); });
    }
    return {
      provinces: function () { return Promise.resolve(data.provinces.features); },
      salang: function () { return Promise.resolve(data.salang.features); },
      projects: function (params) { return Promise.resolve(chosen(params)); },
      // The same figures as GET /stats, for the parts the map shows.
      stats: function (params) {
        var byProvince = {}, byStatus = {};
        Object.keys(cfg.statuses).forEach(function (s) { byStatus[s] = {count: 0, budget_usd: 0}; });
        data.provinces.features.forEach(function (f) {
          var row = {name: f.properties.name, count: 0, budget_usd: 0, by_status: {}};
          Object.keys(cfg.statuses).forEach(function (s) { row.by_status[s] = 0; });
          byProvince[f.properties.code] = row;
        });
        chosen(params).forEach(function (f) {
          var p = f.properties || {}, budget = typeof p.budget_usd === "number" ? p.budget_usd : 0;
          var row = byProvince[p.province];
          if (byStatus[p.status]) { byStatus[p.status].count += 1; byStatus[p.status].budget_usd += budget; }
          if (row) {
            row.count += 1; row.budget_usd += budget;
            if (p.status in row.by_status) row.by_status[p.status] += 1;
          }
        });
        return Promise.resolve({by_status: byStatus, by_province: byProvince});
      }
    };
  }

  /* ---------- the map ---------- */

  function GeoMapView(cfg, data) {
    this.cfg = cfg;
    this.map = window[cfg.names.map];
    // The map and its controls are the page's content: one main landmark holds them (axe: region).
    this.map.getContainer().setAttribute("role", "main");
    this.cluster = window[cfg.names.cluster];
    this.projectsGroup = window[cfg.names.projects];
    this.provincesGroup = window[cfg.names.provinces];
    this.salangGroup = window[cfg.names.salang];
    this.source = data ? embeddedSource(data, cfg) : apiSource(cfg);
    this.shapes = L.layerGroup().addTo(this.projectsGroup);  // lines and areas (not clustered)
    this.markers = {};
    this.tiled = null;  // the projects drawn from vector tiles (tiles.js), for a large layer
    this.icons = {};
    this.stats = null;
    this.shade = "count";
    this.filters = {};
    this.selects = {};  // the filters shown as lists, by name
    this.cardHooks = [];  // functions (feature, card) called on each project card built
    this.loadHooks = [];  // functions (ticket) called when the projects of load number `ticket` are shown
    var self = this;
    filterNames(cfg).forEach(function (key) { self.filters[key] = (cfg.filters[key] || []).slice(); });
    this.state = {ready: false, layers: false, loads: 0, projects: 0, markers: 0, shapes: 0, provinces: 0, salang: 0,
                  errors: []};
  }

  GeoMapView.prototype.params = function () {
    var params = {}, self = this;
    Object.keys(this.cfg.query).forEach(function (k) { params[k] = self.cfg.query[k]; });
    filterNames(this.cfg).forEach(function (key) {
      if (self.filters[key].length) params[key] = self.filters[key].join(",");
    });
    return params;
  };

  // True when a checkbox group (a field with values: status, category) has every box unticked: nothing
  // can match, while the same choice left out of the query would mean "all".
  GeoMapView.prototype.selectsNothing = function () {
    var self = this;
    return this.cfg.filter_fields.some(function (field) {
      return field.values && self.filters[field.name].length === 0 && self.unticked(field.name);
    });
  };

  // A marker icon drawn through the DOM (its colour set as a style property, not a style attribute,
  // which the page's Content-Security-Policy forbids). One icon object serves many markers, so each
  // marker gets its own copy of the drawing. Made on first use: this file loads before Leaflet.
  var PinIcon = null;
  function pinIcon(options) {
    PinIcon = PinIcon || L.DivIcon.extend({
      createIcon: function (oldIcon) {
        var div = L.DivIcon.prototype.createIcon.call(this, oldIcon);
        var pin = el("span", {class: "geo-pin"});
        pin.style.background = this.options.colour;
        if (this.options.glyph) pin.appendChild(iconSvg(this.options.glyph));
        div.appendChild(pin);
        return div;
      }
    });
    return new PinIcon(options);
  }

  GeoMapView.prototype.icon = function (props) {
    var status = this.cfg.statuses[props.status] ? props.status : "";
    var category = this.cfg.icons[props.category] ? props.category : "other";
    var key = status + "|" + category;
    if (!this.icons[key]) {
      // The app's own palette and icon paths only: the lookup keys never reach the drawing.
      this.icons[key] = pinIcon({html: "", colour: this.cfg.statuses[status] || "#34495e",
                                 glyph: this.cfg.icons[category], className: "geo-marker",
                                 iconSize: [24, 24], iconAnchor: [12, 12], popupAnchor: [0, -10]});
    }
    return this.icons[key];
  };

  GeoMapView.prototype.card = function (feature) {
    var cfg = this.cfg, p = feature.properties || {};
    var rows = [["Category", label(p.category)], ["Status", label(p.status)],
                ["Province", p.province_name || p.province || "unknown"]];
    if (typeof p.budget_usd === "number") rows.push(["Budget", "USD " + Math.round(p.budget_usd).toLocaleString("en-US")]);
    if (p.start_date || p.end_date) rows.push(["Dates", (p.start_date || "?") + " to " + (p.end_date || "?")]);
    if (Array.isArray(p.funders) && p.funders.length) rows.push(["Funders", p.funders.map(String).join(", ")]);
    var table = el("table", {}, rows.map(function (r) {
      return el("tr", {}, [el("th", {text: r[0]}), el("td", {text: r[1], dir: "auto"})]);
    }));
    // A card's title is a level-2 heading under the page's (hidden) h1; the tag stays h4 for its style.
    var card = el("div", {class: "geo-card"}, [el("h4", {"aria-level": 2, text: p.name || "(unnamed)", dir: "auto"})]);
    [["name_prs", "prs"], ["name_ps", "ps"]].forEach(function (pair) {
      if (p[pair[0]]) card.appendChild(el("div", {class: "geo-rtl", dir: "rtl", lang: pair[1], text: p[pair[0]]}));
    });
    card.appendChild(table);
    // A long description scrolls in its box: focusable, so it scrolls from the keyboard too (axe:
    // scrollable-region-focusable).
    if (p.description) card.appendChild(el("p", {class: "geo-desc", dir: "auto", tabindex: 0, text: p.description}));
    if (Array.isArray(p.status_history) && p.status_history.length) {
      card.appendChild(el("div", {class: "geo-subtitle", text: "Status history"}));
      card.appendChild(el("ol", {class: "geo-timeline"}, p.status_history.map(function (step) {
        var item = el("li", {}, [swatch(cfg.statuses[step.status] || "#34495e", "geo-dot"),
                                 el("time", {text: String(step.at || "").slice(0, 10), datetime: step.at}),
                                 el("strong", {text: " " + label(step.status)})]);
        // Who made the change (the key's name, never the key), why, and on what source.
        if (step.by) item.appendChild(el("span", {class: "geo-by", text: " by " + step.by}));
        if (step.note) item.appendChild(el("div", {class: "geo-note", dir: "auto", text: step.note}));
        var evidence = safeUrl(step.source);
        if (evidence) item.appendChild(el("div", {class: "geo-note"}, [link(evidence, "Source of this change")]));
        return item;
      })));
    }
    var links = el("p", {class: "geo-links"});
    if (!cfg.embedded && feature.id !== undefined) {
      links.appendChild(link(cfg.urls.item.replace("{id}", "projects")
        .replace("{fid}", encodeURIComponent(String(feature.id))), "Item JSON"));
    }
    var source = safeUrl(p.source_url);
    if (source) { if (links.childNodes.length) links.appendChild(document.createTextNode(" · ")); links.appendChild(link(source, "Source")); }
    if (links.childNodes.length) card.appendChild(links);
    // Hooks (the editor, editor.js) may add to a project's card, e.g. its edit buttons.
    this.cardHooks.forEach(function (hook) { hook(feature, card); });
    return card;
  };

  // One project's layer: a clustered marker for a point, a styled shape (not clustered) otherwise. Its
  // popup and tooltip read `layer.feature` when shown, so an update in place (putProject) shows the new
  // values without a new layer.
  GeoMapView.prototype.projectLayer = function (feature) {
    var self = this, props = feature.properties || {}, layer;
    var popup = function () { return self.card(layer.feature); };
    if (feature.geometry.type === "Point") {
      var xy = feature.geometry.coordinates;
      layer = L.marker([xy[1], xy[0]], {icon: this.icon(props), title: String(props.name || ""), alt: ""});
    } else {
      var colour = this.cfg.statuses[props.status] || "#34495e";
      layer = L.geoJSON(feature, {style: {color: colour, weight: 4, fillColor: colour, fillOpacity: 0.35}});
      layer.bindTooltip(function () { return el("span", {text: String(layer.feature.properties.name || ""), dir: "auto"}); });
    }
    layer.feature = feature;  // leaflet-search reads feature.properties.name
    layer.bindPopup(popup, {maxWidth: 340, className: "geo-popup"});
    return layer;
  };

  GeoMapView.prototype.showProjects = function (features) {
    var self = this, markers = [], byId = {};
    this.cluster.clearLayers();
    this.shapes.clearLayers();
    var shapeCount = 0;
    features.forEach(function (feature) {
      if (!feature.geometry) return;
      var layer = self.projectLayer(feature);
      if (layer.getLatLng) markers.push(layer);
      else { self.shapes.addLayer(layer); shapeCount += 1; }
      byId[String(feature.id)] = layer;
    });
    this.markers = byId;
    this.state.projects = features.length;
    this.state.shapes = shapeCount;
    return new Promise(function (resolve) {
      if (!markers.length) { self.state.markers = 0; resolve(); return; }
      // chunkedLoading adds the markers in slices; the last slice reports processed === total.
      self.cluster.options.chunkProgress = function (processed, total) {
        if (processed === total) { self.state.markers = total; resolve(); }
      };
      self.cluster.addLayers(markers);
    });
  };

  /* ---------- one project at a time (the changes feed, follow.js) ---------- */

  // Whether the page's filters keep this project. Only the filter fields are judged here; a page whose
  // address carries other item parameters (bbox, datetime, a CQL2 filter) reloads instead (needsReload).
  GeoMapView.prototype.keeps = function (feature) {
    var p = feature.properties || {}, self = this;
    if (!feature.geometry || this.selectsNothing()) return false;
    return filterNames(this.cfg).every(function (key) {
      var chosen = self.filters[key];
      return !chosen.length || chosen.indexOf(String(p[key])) >= 0;
    });
  };

  GeoMapView.prototype.needsReload = function () {
    return Object.keys(this.cfg.query).length > 0;
  };

  // Shows `feature` as it now is (added, or its layer updated or replaced), or removes it when the
  // filters no longer keep it. Applying the same feature twice changes nothing.
  GeoMapView.prototype.putProject = function (feature) {
    if (this.tiled && this.tiled.active) { this.tiled.changed(); return; }  // the tiles are drawn again
    var id = String(feature.id), old = this.markers[id];
    if (!this.keeps(feature)) { this.removeProject(id); return; }
    var point = feature.geometry.type === "Point";
    if (old && point && old.getLatLng) {
      // In place: the marker keeps its cluster and an open popup stays open, with the new card.
      var xy = feature.geometry.coordinates, props = feature.properties || {};
      old.feature = feature;
      old.options.title = String(props.name || "");
      old.setIcon(this.icon(props));
      if (old.getLatLng().lat !== xy[1] || old.getLatLng().lng !== xy[0]) old.setLatLng([xy[1], xy[0]]);
      if (old.isPopupOpen()) old.getPopup().update();
      return;
    }
    var wasOpen = !!old && old.isPopupOpen();
    if (old) this.removeProject(id);
    var layer = this.projectLayer(feature);
    if (point) { this.cluster.addLayer(layer); this.state.markers += 1; }
    else { this.shapes.addLayer(layer); this.state.shapes += 1; }
    this.markers[id] = layer;
    this.state.projects += 1;
    if (wasOpen) layer.openPopup();
  };

  GeoMapView.prototype.removeProject = function (id) {
    if (this.tiled && this.tiled.active) { this.tiled.changed(); return; }
    var layer = this.markers[String(id)];
    if (!layer) return;
    if (layer.getLatLng) { this.cluster.removeLayer(layer); this.state.markers -= 1; }
    else { this.shapes.removeLayer(layer); this.state.shapes -= 1; }
    delete this.markers[String(id)];
    this.state.projects -= 1;
  };

  // After single projects changed: the figures (legend, choropleth, the count) asked for again.
  GeoMapView.prototype.refreshStats = function () {
    var self = this, ticket = this.state.loads;
    this.showCount();
    if (this.selectsNothing()) return Promise.resolve();
    return this.source.stats(this.params()).then(function (stats) {
      if (ticket !== self.state.loads) return;  // a reload brings its own
      self.stats = stats;
      if (self.tiled && self.tiled.active) { self.state.projects = self.total(stats); self.showCount(); }
      self.restyle();
    }).catch(function (error) { if (window.console) console.warn("geomap:", error); });
  };

  GeoMapView.prototype.showCount = function () {
    var n = this.state.projects;
    if (this.summary) this.summary.textContent = n + (n === 1 ? " project shown" : " projects shown");
  };

  // `/map?focus=<id>` (the link on an item's HTML page): that project's card, or that Salang tunnel or
  // province framed.
  GeoMapView.prototype.focus = function (id) {
    var self = this, map = this.map;
    if (!id) return;
    // The country's framing (fitCountry) may still be panning: a card opened now would close when the
    // clusters redraw at its end. Leaflet has no public "moving" flag; _panAnim is its pan animation.
    if (map._panAnim && map._panAnim._inProgress) {
      map.once("moveend", function () { self.focus(id); });
      return;
    }
    if (this.openProject(id)) return;
    [this.salangLayer, this.provinceLayer].forEach(function (group) {
      if (group) group.eachLayer(function (layer) {
        if (id && layer.feature && String(layer.feature.id) === id && layer.getBounds) {
          map.fitBounds(layer.getBounds(), {padding: [40, 40], maxZoom: 12});
          id = null;
        }
      });
    });
  };

  GeoMapView.prototype.openProject = function (id) {
    if (this.tiled && this.tiled.active) { this.tiled.open(String(id)); return true; }  // fetched by id
    var layer = this.markers[String(id)], map = this.map;
    if (!layer) return false;
    if (layer.getLatLng) this.cluster.zoomToShowLayer(layer, function () { layer.openPopup(); });
    else { map.fitBounds(layer.getBounds()); layer.openPopup(); }
    return true;
  };

  /* ---------- provinces: choropleth and popups ---------- */

  GeoMapView.prototype.provinceValue = function (code) {
    var row = this.stats && this.stats.by_province[code];
    if (!row) return 0;
    return this.shade === "budget" ? row.budget_usd : row.count;
  };

  GeoMapView.prototype.classes = function () {
    var self = this, max = 0;
    Object.keys((this.stats && this.stats.by_province) || {}).forEach(function (code) {
      max = Math.max(max, self.provinceValue(code));
    });
    return max;
  };

  GeoMapView.prototype.provinceStyle = function (feature) {
    var base = {color: "#555", weight: 1, fillColor: "#f2efe9", fillOpacity: this.cfg.basemap ? 0.25 : 0.85};
    if (this.shade === "none" || !this.stats) return base;
    var max = this.classes(), value = this.provinceValue(feature.properties.code);
    var palette = this.shade === "budget" ? ORANGES : BLUES;
    if (value > 0 && max > 0) {
      base.fillColor = palette[Math.min(4, Math.floor((value / max) * 5 - 1e-9))];
      base.fillOpacity = 0.6;  // light enough for the tunnels and markers on top to read
    }
    return base;
  };

  GeoMapView.prototype.provinceCard = function (feature) {
    var p = feature.properties, row = (this.stats && this.stats.by_province[p.code]) || null;
    var card = el("div", {class: "geo-card"}, [el("h4", {"aria-level": 2, text: p.name, dir: "auto"})]);
    ["name_prs", "name_ps"].forEach(function (key) {
      if (p[key]) card.appendChild(el("div", {class: "geo-rtl", dir: "rtl", text: p[key]}));
    });
    card.appendChild(el("div", {class: "geo-muted", text: p.code + (p.area_km2 ? " · " + Math.round(p.area_km2).toLocaleString("en-US") + " km²" : "")}));
    if (!row) { card.appendChild(el("p", {text: "No figures."})); return card; }
    card.appendChild(el("p", {text: row.count + (row.count === 1 ? " project" : " projects") + ", " + money(row.budget_usd)}));
    card.appendChild(this.chart(row.by_status));
    return card;
  };

  GeoMapView.prototype.chart = function (counts) {
    // A small horizontal bar chart of projects by status, drawn as SVG through the DOM.
    var statuses = Object.keys(this.cfg.statuses), max = 1, self = this;
    statuses.forEach(function (s) { max = Math.max(max, counts[s] || 0); });
    var rowH = 16, labelW = 118, barW = 120;
    var chart = svg("svg", {class: "geo-chart", width: labelW + barW + 30, height: statuses.length * rowH,
                            role: "img", "aria-label": "Projects by status"});
    statuses.forEach(function (s, i) {
      var y = i * rowH, n = counts[s] || 0;
      var name = svg("text", {x: labelW - 4, y: y + 12, "text-anchor": "end"});
      name.textContent = label(s);
      chart.appendChild(name);
      chart.appendChild(svg("rect", {x: labelW, y: y + 3, height: rowH - 6, width: Math.max(n ? 2 : 0, barW * n / max),
                                     fill: self.cfg.statuses[s]}));
      var value = svg("text", {x: labelW + barW * n / max + 4, y: y + 12});
      value.textContent = String(n);
      chart.appendChild(value);
    });
    return chart;
  };

  // Frame the country in the part of the map that the filter panel (right) and the legend (left)
  // leave free; on a narrow screen the margins shrink so the country is never squeezed out.
  GeoMapView.prototype.fitCountry = function () {
    if (!this.provinceLayer || !this.provinceLayer.getLayers().length) return;
    var size = this.map.getSize(), cap = function (px) { return Math.min(px, size.x * 0.3); };
    var panel = document.getElementById("geo-panel"), legend = document.getElementById("geo-legend");
    var right = panel ? cap(panel.offsetWidth + 10) : 10, left = legend ? cap(legend.offsetWidth + 10) : 10;
    this.map.fitBounds(this.provinceLayer.getBounds(), {paddingTopRight: [right, 10], paddingBottomLeft: [left, 10]});
  };

  GeoMapView.prototype.showProvinces = function (features) {
    var self = this;
    this.provinceLayer = L.geoJSON({type: "FeatureCollection", features: features}, {
      style: function (f) { return self.provinceStyle(f); },
      onEachFeature: function (feature, layer) {
        layer.bindPopup(function () { return self.provinceCard(feature); }, {maxWidth: 300});
        layer.bindTooltip(function () {
          var row = self.stats && self.stats.by_province[feature.properties.code];
          return el("span", {dir: "auto", text: feature.properties.name + (row ? " · " + row.count + " projects" : "")});
        }, {sticky: true});
        layer.on("mouseover", function () { layer.setStyle({weight: 2.5, color: "#222"}); });
        layer.on("mouseout", function () { layer.setStyle({weight: 1, color: "#555"}); });
      }
    });
    this.provincesGroup.addLayer(this.provinceLayer);
    // Under everything else in the shared SVG, whichever layer arrived first: otherwise a province that
    // loads after the projects covers their lines and areas (no hover, no click).
    this.provinceLayer.bringToBack();
    this.state.provinces = features.length;
    this.fitCountry();
    this.fillSelects("provinces", features);
    if (!this.cfg.basemap && L.Control.MiniMap) {
      // No basemap tiles: the minimap shows the provinces instead.
      var mini = L.geoJSON({type: "FeatureCollection", features: features},
                           {style: {color: "#777", weight: 0.6, fillColor: "#e8e2d6", fillOpacity: 1}, interactive: false});
      new L.Control.MiniMap(mini, {position: "bottomright", toggleDisplay: true, zoomLevelOffset: -4}).addTo(this.map);
    }
  };

  GeoMapView.prototype.restyle = function () {
    var self = this;
    if (this.provinceLayer) this.provinceLayer.setStyle(function (f) { return self.provinceStyle(f); });
    this.updateLegend();
  };

  /* ---------- Salang ---------- */

  GeoMapView.prototype.salangStyle = function (feature) {
    var p = feature.properties || {};
    if (p.kind === "corridor") return {color: "#d4ac0d", weight: 9, opacity: 0.55};
    if (p.status === "proposed") return {color: "#b03a2e", weight: 5, dashArray: "10 8"};
    return {color: "#1b2631", weight: 6};
  };

  GeoMapView.prototype.salangCard = function (feature) {
    var p = feature.properties || {};
    var card = el("div", {class: "geo-card"}, [el("h4", {"aria-level": 2, text: p.name, dir: "auto"})]);
    [["name_prs", "prs"], ["name_ps", "ps"]].forEach(function (pair) {
      if (p[pair[0]]) card.appendChild(el("div", {class: "geo-rtl", dir: "rtl", lang: pair[1], text: p[pair[0]]}));
    });
    var rows = [["Status", label(p.status)], ["Length", p.length_km ? p.length_km + " km" : null],
                ["Opened", p.opened], ["Built", p.construction], ["Altitude", p.altitude_m ? p.altitude_m + " m" : null],
                ["Geometry", p.geometry_quality]].filter(function (r) { return r[1]; });
    card.appendChild(el("table", {}, rows.map(function (r) {
      return el("tr", {}, [el("th", {text: r[0]}), el("td", {text: r[1], dir: "auto"})]);
    })));
    if (p.history) card.appendChild(el("p", {class: "geo-desc", tabindex: 0, text: p.history}));
    if (p.geometry_note) card.appendChild(el("p", {class: "geo-note", text: p.geometry_note}));
    if (Array.isArray(p.sources) && p.sources.length) {
      card.appendChild(el("ul", {class: "geo-sources"}, p.sources.map(function (s) {
        var text = [s.title, s.publisher, s.date].filter(Boolean).join(", ");
        var href = safeUrl(s.url);
        return el("li", {}, [href ? link(href, text) : el("span", {text: text})]);
      })));
    }
    return card;
  };

  GeoMapView.prototype.showSalang = function (features) {
    var self = this;
    this.salangLayer = L.geoJSON({type: "FeatureCollection", features: features}, {
      style: function (f) { return self.salangStyle(f); },
      onEachFeature: function (feature, layer) {
        var p = feature.properties || {};
        layer.bindPopup(function () { return self.salangCard(feature); }, {maxWidth: 340});
        var text = el("span", {class: "geo-label-text"}, [el("span", {text: p.name, dir: "auto"})]);
        if (p.name_prs) text.appendChild(el("span", {class: "geo-rtl", dir: "rtl", lang: "prs", text: p.name_prs}));
        layer.bindTooltip(text, {permanent: true, className: "geo-label",
                                 direction: p.status === "proposed" ? "right" : "left", offset: [p.status === "proposed" ? 8 : -8, 0]});
      }
    });
    this.salangGroup.addLayer(this.salangLayer);
    this.state.salang = features.length;
  };

  GeoMapView.prototype.addSalangControl = function () {
    var self = this;
    var Control = L.Control.extend({
      options: {position: "topleft"},
      onAdd: function () {
        var box = el("div", {class: "leaflet-bar geo-salang-control"});
        var button = el("a", {href: "#", role: "button", title: "Zoom to Salang", "aria-label": "Zoom to Salang",
                              text: "Salang"});
        L.DomEvent.on(button, "click", function (e) {
          L.DomEvent.preventDefault(e);
          if (self.salangLayer && self.salangLayer.getLayers().length) {
            self.map.fitBounds(self.salangLayer.getBounds(), {padding: [60, 60], maxZoom: 12});
          } else {
            self.map.setView([35.322, 69.027], 12);
          }
        });
        L.DomEvent.disableClickPropagation(box);
        box.appendChild(button);
        return box;
      }
    });
    new Control().addTo(this.map);
  };

  /* ---------- panel: filters, shading, downloads ---------- */

  // How a value is marked in the panel: the status colours, the category icons (cfg.filter_fields marks).
  GeoMapView.prototype.mark = function (marks, value) {
    var cfg = this.cfg;
    if (marks === "statuses") return swatch(cfg.statuses[value] || "#34495e");
    if (marks === "icons") return cfg.icons[value] ? iconSvg(cfg.icons[value], 13) : null;
    return null;
  };

  GeoMapView.prototype.checkboxes = function (key, values, decorate) {
    var self = this, box = el("fieldset", {class: "geo-checks", "data-filter": key});
    values.forEach(function (value) {
      var input = el("input", {type: "checkbox", name: key, value: value});
      input.checked = !self.filters[key].length || self.filters[key].indexOf(value) >= 0;
      input.addEventListener("change", function () { self.readChecks(key, box); });
      box.appendChild(el("label", {}, [input, decorate(value), el("span", {text: " " + label(value)})]));
    });
    return box;
  };

  GeoMapView.prototype.readChecks = function (key, box) {
    var inputs = Array.prototype.slice.call(box.querySelectorAll("input"));
    var on = inputs.filter(function (i) { return i.checked; }).map(function (i) { return i.value; });
    // All ticked means "no filter"; none ticked means nothing matches, said with an impossible value list.
    this.filters[key] = on.length === inputs.length ? [] : on;
    this.reload();
  };

  // The lists of the filters whose values are the ids of this layer's features, filled when it arrives.
  GeoMapView.prototype.fillSelects = function (layer, features) {
    var self = this;
    this.cfg.filter_fields.forEach(function (field) {
      var select = self.selects[field.name];
      if (!select || field.values_of !== layer) return;
      features.slice().sort(function (a, b) { return String(a.properties.name).localeCompare(String(b.properties.name)); })
        .forEach(function (f) {
          var option = el("option", {value: f.id, text: f.properties.name || f.id});
          option.selected = self.filters[field.name].indexOf(String(f.id)) >= 0;
          select.appendChild(option);
        });
    });
  };

  GeoMapView.prototype.selectList = function (field) {
    var self = this;
    var select = el("select", {multiple: "multiple", size: 5, name: field.name,
                               "aria-label": field.title + " (none chosen: all)"});
    select.addEventListener("change", function () {
      self.filters[field.name] = Array.prototype.slice.call(select.selectedOptions)
        .map(function (o) { return o.value; });
      self.reload();
    });
    this.selects[field.name] = select;
    return select;
  };

  GeoMapView.prototype.addPanel = function () {
    var self = this, cfg = this.cfg;
    var Panel = L.Control.extend({
      options: {position: "topright"},
      onAdd: function () {
        var panel = el("div", {class: "geo-panel leaflet-bar", id: "geo-panel"});
        // On a phone the open panel would cover the left-hand controls (the editor's among them): it
        // starts closed there, one tap from open.
        var narrow = window.matchMedia("(max-width: 480px)").matches;
        var toggle = el("button", {type: "button", class: "geo-panel-toggle", text: "Filters & downloads",
                                   "aria-expanded": String(!narrow)});
        var body = el("div", {class: "geo-panel-body"});
        body.hidden = narrow;
        toggle.addEventListener("click", function () {
          var open = body.hidden;
          body.hidden = !open;
          toggle.setAttribute("aria-expanded", String(open));
        });
        panel.appendChild(toggle);
        panel.appendChild(body);
        // One group per filter field: checkboxes for a vocabulary, a list for a layer's ids.
        cfg.filter_fields.forEach(function (field) {
          body.appendChild(el("div", {class: "geo-subtitle", text: field.title}));
          if (field.values) {
            body.appendChild(self.checkboxes(field.name, field.values, function (v) { return self.mark(field.marks, v); }));
          } else {
            body.appendChild(self.selectList(field));
            body.appendChild(el("div", {class: "geo-hint", text: "None chosen: all (Ctrl-click for several)."}));
          }
        });
        body.appendChild(el("div", {class: "geo-subtitle", text: "Shade provinces by"}));
        var shading = el("div", {class: "geo-shade"});
        [["count", "number of projects"], ["budget", "total budget"], ["none", "nothing"]].forEach(function (pair) {
          var input = el("input", {type: "radio", name: "geo-shade", value: pair[0]});
          input.checked = self.shade === pair[0];
          input.addEventListener("change", function () { self.shade = pair[0]; self.restyle(); });
          shading.appendChild(el("label", {}, [input, el("span", {text: " " + pair[1]})]));
        });
        body.appendChild(shading);
        self.summary = el("div", {class: "geo-summary", id: "geo-summary", "aria-live": "polite", text: "Loading…"});
        body.appendChild(self.summary);
        self.downloads = el("div", {class: "geo-downloads", id: "geo-downloads"});
        body.appendChild(self.downloads);
        L.DomEvent.disableClickPropagation(panel);
        L.DomEvent.disableScrollPropagation(panel);
        return panel;
      }
    });
    new Panel().addTo(this.map);
  };

  GeoMapView.prototype.updateDownloads = function () {
    var box = this.downloads, cfg = this.cfg, params = new URLSearchParams(this.params()).toString();
    if (!box) return;
    box.textContent = "";
    box.appendChild(el("div", {class: "geo-subtitle", text: "Download the layers"}));
    if (cfg.embedded) {
      box.appendChild(el("div", {class: "geo-hint", text: "Downloads are offered by the service's map."}));
      return;
    }
    var nothing = this.selectsNothing();
    [["projects", "Projects (as filtered)", params], ["provinces", "Provinces", ""], ["salang", "Salang", ""]]
      .forEach(function (layer) {
        var row = el("div", {class: "geo-download-row"}, [el("span", {text: layer[1] + ": "})]);
        if (nothing && layer[0] === "projects") {
          row.appendChild(el("span", {class: "geo-hint", text: "nothing selected (tick a status and a category)"}));
          box.appendChild(row);
          return;
        }
        cfg.formats.forEach(function (fmt, i) {
          var href = cfg.urls.layers.replace("{id}", layer[0]).replace("{format}", fmt) + (layer[2] ? "?" + layer[2] : "");
          if (i) row.appendChild(document.createTextNode(" "));
          row.appendChild(el("a", {href: href, download: "", text: fmt, "data-layer": layer[0]}));
        });
        box.appendChild(row);
      });
  };

  /* ---------- legend ---------- */

  GeoMapView.prototype.addLegend = function () {
    var self = this;
    var Legend = L.Control.extend({
      options: {position: "bottomleft"},
      onAdd: function () {
        self.legend = el("div", {class: "geo-legend", id: "geo-legend"});
        L.DomEvent.disableClickPropagation(self.legend);
        L.DomEvent.disableScrollPropagation(self.legend);
        return self.legend;
      }
    });
    new Legend().addTo(this.map);
    this.updateLegend();
  };

  GeoMapView.prototype.updateLegend = function () {
    var cfg = this.cfg, legend = this.legend, stats = this.stats, self = this;
    if (!legend) return;
    legend.textContent = "";
    legend.appendChild(el("strong", {text: "Project status"}));
    Object.keys(cfg.statuses).forEach(function (s) {
      var n = stats && stats.by_status[s] ? stats.by_status[s].count : 0;
      legend.appendChild(el("div", {}, [swatch(cfg.statuses[s]), el("span", {text: label(s) + " (" + n + ")"})]));
    });
    legend.appendChild(el("strong", {text: "Category"}));
    var icons = el("div", {class: "geo-legend-icons"});
    Object.keys(cfg.icons).forEach(function (c) {
      icons.appendChild(el("span", {title: label(c)}, [iconSvg(cfg.icons[c], 12), el("span", {text: " " + label(c)})]));
    });
    legend.appendChild(icons);
    legend.appendChild(el("strong", {text: "Salang Pass"}));
    legend.appendChild(el("div", {class: "tunnel"}, [el("i", {class: "solid"}), el("span", {text: "Salang tunnel"})]));
    legend.appendChild(el("div", {class: "tunnel"}, [el("i", {class: "dashed"}), el("span", {text: "Proposed tunnel"})]));
    if (this.shade !== "none" && stats) {
      var max = this.classes(), palette = this.shade === "budget" ? ORANGES : BLUES;
      legend.appendChild(el("strong", {text: this.shade === "budget" ? "Total budget by province" : "Projects by province"}));
      if (!max) legend.appendChild(el("div", {class: "geo-hint", text: "No projects."}));
      else palette.forEach(function (colour, i) {
        // Class i holds the values in (max·i/5, max·(i+1)/5]; counts are whole numbers.
        var lo = max * i / 5, hi = max * (i + 1) / 5, text;
        if (self.shade === "budget") text = money(lo) + " – " + money(hi);
        else {
          var first = Math.floor(lo) + 1, last = Math.floor(hi);
          if (first > last) return;  // no whole number falls in this class
          text = first === last ? String(first) : first + " – " + last;
        }
        legend.appendChild(el("div", {}, [swatch(colour, "geo-square"), el("span", {text: text})]));
      });
    }
  };

  /* ---------- loading ---------- */

  GeoMapView.prototype.syncUrl = function () {
    if (this.cfg.embedded || !window.history || !window.history.replaceState) return;
    var query = new URLSearchParams(this.params()).toString();
    window.history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
  };

  GeoMapView.prototype.reload = function () {
    var self = this, params = this.params(), ticket = ++this.state.loads;
    this.state.ready = false;
    if (this.summary) this.summary.textContent = "Loading…";
    this.syncUrl();
    this.updateDownloads();
    // An empty checkbox group selects nothing: answer locally rather than asking for "all".
    var none = this.selectsNothing(), tiled = this.tiled;
    var stats = none ? Promise.resolve(null) : this.source.stats(params);
    // With tiles at hand, the figures say first how many projects the filters select: above
    // cfg.tiles.above they are drawn from the tiles (null here), else fetched as GeoJSON as before.
    var projects = none ? Promise.resolve([]) : !tiled ? this.source.projects(params) : stats.then(function (s) {
      return self.total(s) > self.cfg.tiles.above ? null : self.source.projects(params);
    });
    return Promise.all([projects, stats]).then(function (got) {
      if (ticket !== self.state.loads) return null;  // a newer choice is on its way
      self.stats = got[1] || {by_status: {}, by_province: {}};
      self.restyle();
      var shown;
      if (got[0] === null) {
        self.showProjects([]);
        self.state.projects = self.total(got[1]);
        shown = tiled.show(params);
      } else {
        if (tiled && tiled.active) tiled.hide();
        shown = self.showProjects(got[0]);
      }
      return shown.then(function () {
        if (ticket !== self.state.loads) return;
        self.showCount();
        self.state.ready = true;
        self.loadHooks.forEach(function (hook) { hook(ticket); });
      });
    }).catch(function (error) { self.fail(error); });
  };

  // How many projects the figures of GET /stats count (every project has a status).
  GeoMapView.prototype.total = function (stats) {
    var rows = (stats && stats.by_status) || {};
    return Object.keys(rows).reduce(function (n, s) { return n + (Number(rows[s].count) || 0); }, 0);
  };

  GeoMapView.prototype.unticked = function (key) {
    var box = document.querySelector('.geo-checks[data-filter="' + key + '"]');
    return !!box && !box.querySelector("input:checked");
  };

  GeoMapView.prototype.fail = function (error) {
    this.state.errors.push(String(error && error.message || error));
    if (this.summary) this.summary.textContent = "Could not load the data: " + String(error && error.message || error);
    if (window.console) console.warn("geomap:", error);
  };

  GeoMapView.prototype.start = function () {
    var self = this;
    if (window.GeoTiles) this.tiled = GeoTiles.attach(this);
    this.addSalangControl();
    this.addPanel();
    this.addLegend();
    var search = window[this.cfg.names.search];
    if (search) {
      // Each suggestion is a text node: leaflet-search's own tip would insert the name as HTML, so a
      // project called "<img onerror=...>" would run its script for whoever types part of its name.
      search.options.buildTip = function (text) { return el("li", {text: text, dir: "auto"}); };
      // A found marker may sit inside a cluster: open the cluster, then the project's card.
      search.on("search:locationfound", function (e) {
        if (e.layer && e.layer.getLatLng) self.cluster.zoomToShowLayer(e.layer, function () { e.layer.openPopup(); });
      });
    }
    var base = Promise.all([
      this.source.provinces().then(function (f) { self.showProvinces(f); }),
      this.source.salang().then(function (f) { self.showSalang(f); })
    ]).then(function () { self.state.layers = true; }).catch(function (error) { self.fail(error); });
    // Read before the first load, which rewrites the address with the filters (see reload).
    var focus = new URLSearchParams(window.location.search).get("focus");
    return Promise.all([base, this.reload()]).then(function () { self.focus(focus); });
  };

  window.GeoMap = {
    view: null,
    start: function (configElement) {
      var cfg = JSON.parse(configElement.textContent);
      var dataElement = cfg.embedded ? document.getElementById("geo-data") : null;
      var data = dataElement ? JSON.parse(dataElement.textContent) : null;
      var view = new GeoMapView(cfg, data);
      window.GeoMap.view = view;
      window.GeoMap.state = view.state;
      window.GeoMap.started = view.start();
      // The served map follows the changes feed (follow.js); an exported file has no feed to follow.
      if (window.GeoFollow && !cfg.embedded && cfg.urls.changes) window.GeoMap.follow = GeoFollow.start(view);
      return view;
    }
  };
})();
