/* The projects drawn from vector tiles (GET /collections/projects/tiles/WebMercatorQuad/{z}/{x}/{y},
 * Mapbox Vector Tiles, decoded by Leaflet.VectorGrid), for a map whose filters select more projects than
 * cfg.tiles.above: the page then downloads only the tiles in view instead of every feature as GeoJSON.
 *
 * At low zooms the server clusters the points: a cluster feature carries `count` and `count_<status>`.
 * Clusters are drawn here as markers with their count as text, coloured by their commonest status (a
 * click zooms in); points are drawn by VectorGrid as status-coloured circles, and a click fetches the
 * project (GET /collections/projects/items/{id}) and shows the usual card (geomap.js card()).
 * The panel's filters go into the tile URL; a change from the feed (follow.js) redraws the tiles (each
 * fetch revalidates its ETag, which changes with the store) rather than patching markers.
 *
 * Safety: like geomap.js, nothing from the data is written as HTML: counts and names are set through
 * textContent, colours as style properties from the app's own palette.
 */
(function () {
  "use strict";

  // Item parameters that only make sense for pages of items, not for tiles (a page's `bbox` does: the
  // tiles keep only what is in it).
  var NOT_FOR_TILES = ["limit", "offset", "sortby", "properties", "f"];
  // Debounce of the redraws asked for by single changes (the feed may bring many at once).
  var REDRAW_MS = 300;

  function TiledProjects(view) {
    var cfg = view.cfg;
    this.view = view;
    this.map = view.map;
    this.url = cfg.tiles.url.replace("{id}", "projects");
    this.params = null;
    this.timer = null;
    this.clusters = {};  // tile key -> [marker]
    this.counts = {};  // tile key -> {clusters, points}
    this.markers = L.layerGroup();
    this.grid = null;
    this.active = false;
  }

  TiledProjects.prototype.isCluster = function (props) {
    return props && props.count !== undefined && props.count !== null;
  };

  TiledProjects.prototype.colour = function (status) {
    return this.view.cfg.statuses[status] || "#34495e";
  };

  // The status with the most projects in a cluster (its counts are `count_<status>` attributes).
  TiledProjects.prototype.commonest = function (props) {
    var best = "", most = -1;
    Object.keys(this.view.cfg.statuses).forEach(function (s) {
      var n = Number(props["count_" + s]) || 0;
      if (n > most) { most = n; best = s; }
    });
    return best;
  };

  TiledProjects.prototype.makeGrid = function () {
    var self = this;
    var Grid = L.VectorGrid.Protobuf.extend({
      // The decoded tile, before VectorGrid draws it: the clusters become markers with their count,
      // the points stay for VectorGrid.
      // A drawn point is a CircleMarker that knows only its tile's pixels, while Leaflet (1.8 on) asks a
      // small clicked circle for getLatLng(): without it, the click's own position is used.
      _createLayer: function (feat, pxPerExtent, layerStyle) {
        var layer = L.VectorGrid.Protobuf.prototype._createLayer.call(this, feat, pxPerExtent, layerStyle);
        if (layer && feat.type === 1) layer.getLatLng = null;
        return layer;
      },
      _getVectorTilePromise: function (coords, tileBounds) {
        var grid = this;
        return L.VectorGrid.Protobuf.prototype._getVectorTilePromise.call(this, coords, tileBounds)
          .then(function (json) { return self.split(grid, coords, json); });
      }
    });
    var grid = new Grid(this.tileUrl(), {
      interactive: true,
      pane: this.pane(),
      maxNativeZoom: 18,
      // Each tile is revalidated (its ETag names the store's version and the filters: a 304 costs
      // little), so a redraw after a change never shows a tile cached from before it.
      fetchOptions: {credentials: "same-origin", cache: "no-cache"},
      vectorTileLayerStyles: {
        projects: function (props) {
          if (self.isCluster(props)) return [];
          var colour = self.colour(props.status);
          // geo_kind: the MVT geometry type, set in split() (1 point, 2 line, 3 polygon).
          if (props.geo_kind === 2) return {weight: 4, color: colour, opacity: 0.9, fill: false};
          if (props.geo_kind === 3) return {weight: 2, color: colour, fill: true, fillColor: colour, fillOpacity: 0.35};
          return {radius: 6, weight: 1.5, color: "#ffffff", opacity: 1, fill: true, fillColor: colour,
                  fillOpacity: 0.95};
        }
      }
    });
    grid.on("click", function (e) { self.clickPoint(e); });
    grid.on("tileunload", function (e) { self.drop(grid._tileCoordsToKey(e.coords)); });
    return grid;
  };

  // The points' own pane, above the provinces (the overlay pane, 400), whose areas cover the country
  // and would take every click, and below the markers (600).
  TiledProjects.prototype.pane = function () {
    var name = "geoTiles";
    if (!this.map.getPane(name)) this.map.createPane(name).style.zIndex = "450";
    return name;
  };

  TiledProjects.prototype.split = function (grid, coords, json) {
    var key = grid._tileCoordsToKey(coords), layer = json.layers && json.layers.projects;
    this.drop(key);
    if (!layer || grid !== this.grid || !grid._tiles[key]) return json;  // gone while it loaded
    var self = this, size = grid.getTileSize(), scale = size.divideBy(layer.extent);
    var origin = coords.scaleBy(size), made = [], points = 0;
    layer.features.forEach(function (feat) {
      if (!self.isCluster(feat.properties)) { feat.properties.geo_kind = feat.type; points += 1; return; }
      var first = feat.geometry && feat.geometry[0] && feat.geometry[0][0];
      if (!first) return;
      var at = self.map.unproject(origin.add(L.point(first.x * scale.x, first.y * scale.y)), coords.z);
      var marker = self.clusterMarker(feat.properties, at);
      self.markers.addLayer(marker);
      made.push(marker);
    });
    this.clusters[key] = made;
    this.counts[key] = {clusters: made.length, points: points};
    this.tally();
    return json;
  };

  TiledProjects.prototype.drop = function (key) {
    var self = this;
    (this.clusters[key] || []).forEach(function (m) { self.markers.removeLayer(m); });
    delete this.clusters[key];
    delete this.counts[key];
    this.tally();
  };

  // What is drawn now, for the tests and the benchmark (GeoMap.state).
  TiledProjects.prototype.tally = function () {
    var counts = this.counts, clusters = 0, points = 0;
    Object.keys(counts).forEach(function (k) { clusters += counts[k].clusters; points += counts[k].points; });
    this.view.state.clusters = clusters;
    this.view.state.points = points;
    this.view.state.markers = clusters + points;
  };

  TiledProjects.prototype.clusterMarker = function (props, at) {
    var self = this, n = Number(props.count) || 0;
    // Small enough that the server's neighbouring clusters (one per cell of its grid) rarely overlap.
    var size = n < 10 ? 24 : n < 100 ? 28 : n < 1000 ? 34 : 40;
    var icon = L.divIcon({html: "", className: "geo-tile-cluster", iconSize: [size, size]});
    var marker = L.marker(at, {icon: icon, keyboard: true, title: n + " projects",
                               alt: n + " projects"});
    marker.on("add", function () {
      // The count as text and the colour as a style property (the page's policy forbids style attributes).
      var div = marker.getElement();
      if (!div) return;
      div.textContent = "";
      var disc = document.createElement("span");
      disc.className = "geo-tile-count";
      disc.textContent = String(n);
      disc.style.background = self.colour(self.commonest(props));
      disc.style.width = disc.style.height = disc.style.lineHeight = size + "px";
      disc.style.borderRadius = "50%";
      disc.style.display = "block";
      disc.style.textAlign = "center";
      disc.style.color = "#ffffff";
      disc.style.fontWeight = "bold";
      disc.style.boxShadow = "0 0 0 3px rgba(255,255,255,0.6)";
      div.appendChild(disc);
    });
    marker.on("click", function () {
      self.map.setView(at, Math.min(self.map.getZoom() + 2, self.map.getMaxZoom()));
    });
    return marker;
  };

  TiledProjects.prototype.clickPoint = function (e) {
    var props = (e.layer && e.layer.properties) || {};
    var id = props.id !== undefined && props.id !== null ? props.id : e.layer && e.layer.id;
    if (id === undefined || id === null || this.isCluster(props)) return;
    this.open(String(id), e.latlng);
  };

  // Opens project `id`'s card, fetched by id; with no position given, the map moves to the project.
  TiledProjects.prototype.open = function (id, latlng) {
    var self = this, view = this.view, cfg = view.cfg;
    var url = cfg.urls.item.replace("{id}", "projects").replace("{fid}", encodeURIComponent(id));
    var popup = L.popup({maxWidth: 340, className: "geo-popup"});
    var loading = document.createElement("div");
    loading.className = "geo-card";
    loading.textContent = "Loading…";
    if (latlng) popup.setLatLng(latlng).setContent(loading).openOn(this.map);
    this.state().opening += 1;
    return fetch(url, {headers: {Accept: "application/geo+json, application/json"}}).then(function (r) {
      if (!r.ok) throw new Error(url + " answered " + r.status);
      return r.json();
    }).then(function (feature) {
      if (!latlng) {
        var g = feature.geometry;
        if (!g) return false;
        var bounds = L.geoJSON(g).getBounds();
        latlng = g.type === "Point" ? L.latLng(g.coordinates[1], g.coordinates[0]) : bounds.getCenter();
        self.map.setView(latlng, Math.max(self.map.getZoom(), 14));
        popup.setLatLng(latlng).openOn(self.map);
      }
      popup.setContent(view.card(feature));
      self.state().opened += 1;
      return true;
    }).catch(function (error) {
      loading.textContent = "Could not load this project.";
      view.fail(error);
      return false;
    });
  };

  TiledProjects.prototype.state = function () {
    var s = this.view.state;
    if (s.opening === undefined) { s.opening = 0; s.opened = 0; }
    return s;
  };

  // The map's parameters that select projects (those a tile, or the name search, takes too).
  TiledProjects.prototype.selecting = function () {
    var params = this.params || {}, out = {};
    Object.keys(params).forEach(function (k) {
      if (NOT_FOR_TILES.indexOf(k) < 0) out[k] = params[k];
    });
    return out;
  };

  TiledProjects.prototype.tileUrl = function () {
    var text = new URLSearchParams(this.selecting()).toString();
    // VectorGrid reads {x}-like names in the whole template: braces in values stay encoded (%7B).
    return this.url + (text ? "?" + text : "");
  };

  // Shows the projects that `params` select (null: none), resolved once the tiles in view are drawn.
  TiledProjects.prototype.show = function (params) {
    var self = this, group = this.view.projectsGroup;
    this.params = params;
    this.active = true;
    this.searchOn(true);
    if (!params) { this.hide(); this.active = true; return Promise.resolve(); }
    if (!this.grid) {
      this.grid = this.makeGrid();
      var loaded = this.loaded();
      group.addLayer(this.markers);
      group.addLayer(this.grid);
      return loaded;
    }
    if (!group.hasLayer(this.grid)) { group.addLayer(this.markers); group.addLayer(this.grid); }
    var done = this.loaded();
    this.grid.setUrl(this.tileUrl());
    return done;
  };

  TiledProjects.prototype.loaded = function () {
    var grid = this.grid, map = this.map, group = this.view.projectsGroup;
    return new Promise(function (resolve) {
      // A layer switched off in the layer control loads nothing: nothing to wait for then.
      if (!map.hasLayer(group)) { resolve(); return; }
      grid.once("load", function () { resolve(); });
    });
  };

  /* ---------- search (leaflet-search): names asked of the items API, not of the drawn markers ---------- */

  // The search box reads the clustered markers on a GeoJSON map; on a tiled map there are none, so it
  // asks the items (a CQL2 LIKE on the name, with the page's filters) while the tiles are shown.
  TiledProjects.prototype.searchOn = function (on) {
    var search = window[this.view.cfg.names.search], self = this;
    if (!search) return;
    if (!this.search) {
      this.search = {layer: search.options.layer, format: search._formatData};
      search.on("search:locationfound", function (e) {
        if (self.active && e.layer && e.layer.geoProject) self.open(e.layer.geoProject, e.latlng);
      });
    }
    search.options.layer = on ? null : this.search.layer;
    search.options.sourceData = on ? function (text, done) { self.names(text, done); } : null;
    // The records as leaflet-search keeps them: name -> position, whose `layer` (passed on with
    // search:locationfound, and read by Folium's own handler) names the project to open.
    search._formatData = on ? function (records) {
      var out = {};
      records.forEach(function (r) {
        var at = L.latLng(r.loc[0], r.loc[1]);
        at.layer = {geoProject: r.id};
        out[r.name] = at;
      });
      return out;
    } : this.search.format;
  };

  // CQL2 text literal: quotes doubled; LIKE's wildcards and escape written as literals.
  function likePrefix(text) {
    return "'" + String(text).replace(/[\\%_]/g, "\\$&").replace(/'/g, "''") + "%'";
  }

  TiledProjects.prototype.names = function (text, done) {
    var cfg = this.view.cfg, params = this.selecting(), query;
    var like = "CASEI(name) LIKE CASEI(" + likePrefix(text) + ")";
    params.filter = params.filter && (params["filter-lang"] || "cql2-text") === "cql2-text"
      ? "(" + params.filter + ") AND " + like : like;
    params["filter-lang"] = "cql2-text";
    params.limit = "20";
    params.properties = "name";
    query = new URLSearchParams(params).toString();
    fetch(cfg.urls.items.replace("{id}", "projects") + "?" + query,
          {headers: {Accept: "application/geo+json, application/json"}})
      .then(function (r) { if (!r.ok) throw new Error("search answered " + r.status); return r.json(); })
      .then(function (doc) {
        // The records for leaflet-search (see searchOn's format): name, position, id.
        var records = [];
        (doc.features || []).forEach(function (f) {
          var g = f.geometry, name = String((f.properties || {}).name || "");
          if (!g || !name) return;
          var at = g.type === "Point" ? [g.coordinates[1], g.coordinates[0]]
            : (function (c) { return [c.lat, c.lng]; })(L.geoJSON(g).getBounds().getCenter());
          records.push({name: name, loc: at, id: String(f.id)});
        });
        done(records);
      })
      .catch(function (error) { if (window.console) console.warn("geomap search:", error); done([]); });
    return {abort: function () {}};
  };

  TiledProjects.prototype.hide = function () {
    var group = this.view.projectsGroup;
    this.searchOn(false);
    this.active = false;
    if (this.grid && group.hasLayer(this.grid)) group.removeLayer(this.grid);
    if (group.hasLayer(this.markers)) group.removeLayer(this.markers);
    this.markers.clearLayers();
    this.clusters = {};
    this.counts = {};
    this.tally();
  };

  // A project changed (the feed, the editor): the tiles are drawn again, once for a burst of changes.
  TiledProjects.prototype.changed = function () {
    var self = this;
    clearTimeout(this.timer);
    this.timer = setTimeout(function () {
      self.timer = null;
      self.view.state.redraws = (self.view.state.redraws || 0) + 1;
      if (self.grid && self.active && self.params) self.grid.redraw();
    }, REDRAW_MS);
  };

  window.GeoTiles = {
    // The tiled layer for `view`, or null where the page has no tiles (an exported map).
    attach: function (view) {
      var cfg = view.cfg;
      if (cfg.embedded || !cfg.tiles || !window.L || !L.VectorGrid || !L.VectorGrid.Protobuf) return null;
      return new TiledProjects(view);
    }
  };
})();
