/* The web map's editor (issue 13): add, edit, move, re-status and delete projects, and import a
 * spreadsheet, through the service's own write API (POST, PATCH, DELETE with If-Match; the import
 * endpoint), with the same checks and problem answers as any other client.
 *
 * - Edit mode starts with an API key, kept in sessionStorage only (never the URL, localStorage or a
 *   cookie); "Sign out" forgets it. Without a key the map shows no editing control at all.
 * - Every value from the data or the user reaches the page through textContent, DOM properties or
 *   setAttribute on fixed names, never as HTML. No inline handler, no eval, no style attribute (the
 *   page's Content-Security-Policy allows none of them); styles are set as properties.
 * - Dialogs are native <dialog> elements opened modal: they keep focus inside (and a Tab trap here makes
 *   sure of it), close on Escape, and give focus back to what opened them.
 */
(function () {
  "use strict";

  var KEY_NAME = "geo-editor-key";
  var FILE_TYPES = {
    csv: "text/csv",
    xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    geojson: "application/geo+json",
    json: "application/geo+json",
    gpkg: "application/geopackage+sqlite3"
  };
  var FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), " +
    "textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function label(value) {
    return String(value === null || value === undefined ? "" : value).replace(/_/g, " ");
  }

  function button(text, onClick, attrs) {
    var node = el("button", Object.assign({type: "button", text: text}, attrs || {}));
    node.addEventListener("click", onClick);
    return node;
  }

  /* ---------- the key: sessionStorage only ---------- */

  var keyStore = {
    get: function () {
      try { return window.sessionStorage.getItem(KEY_NAME); } catch (e) { return null; }
    },
    set: function (key) { window.sessionStorage.setItem(KEY_NAME, key); },
    clear: function () {
      try { window.sessionStorage.removeItem(KEY_NAME); } catch (e) { /* nothing kept */ }
    }
  };

  /* ---------- dialogs ---------- */

  var dialogCount = 0;

  // A modal dialog with a heading; `build(body, dialog)` fills it. Returns the dialog object.
  function openDialog(title, build, options) {
    var opener = document.activeElement;
    var id = "geo-dialog-title-" + (++dialogCount);
    var node = el("dialog", {class: "geo-dialog" + (options && options.wide ? " geo-dialog-wide" : ""),
                             "aria-labelledby": id});
    var heading = el("h2", {id: id, text: title});
    var close = button("×", function () { dialog.close(); }, {class: "geo-dialog-close", "aria-label": "Close"});
    var body = el("div", {class: "geo-dialog-body"});
    node.appendChild(el("div", {class: "geo-dialog-head"}, [heading, close]));
    node.appendChild(body);
    var dialog = {
      node: node, body: body, heading: heading,
      close: function () {
        if (node.open) node.close();
      }
    };
    // The Tab trap: a modal dialog makes the page behind it inert, but Tab may still leave for the
    // browser's own controls; here it cycles within the dialog.
    node.addEventListener("keydown", function (e) {
      if (e.key !== "Tab") return;
      var items = Array.prototype.filter.call(node.querySelectorAll(FOCUSABLE), function (item) {
        return item.offsetParent !== null || item === document.activeElement;
      });
      if (!items.length) return;
      var first = items[0], last = items[items.length - 1];
      if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
      else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
    });
    node.addEventListener("close", function () {
      node.remove();
      if (options && options.onClose) options.onClose();
      if (opener && opener.isConnected && opener.focus) opener.focus();
    });
    build(body, dialog);
    document.body.appendChild(node);
    node.showModal();
    var first = body.querySelector("[autofocus]") || body.querySelector(FOCUSABLE);
    if (first) first.focus();
    return dialog;
  }

  /* ---------- talking to the API ---------- */

  // The outcome of a write: {ok, status, body, etag} or {ok: false, status: 0} when the connection
  // failed. Problem bodies are read as JSON when they are JSON.
  function send(method, url, key, options) {
    var headers = {Accept: "application/geo+json, application/json, application/problem+json",
                   Authorization: "Bearer " + key};
    if (options.type) headers["Content-Type"] = options.type;
    if (options.etag) headers["If-Match"] = options.etag;
    Object.keys(options.headers || {}).forEach(function (name) { headers[name] = options.headers[name]; });
    return fetch(url, {method: method, headers: headers, body: options.body, cache: "no-store",
                       credentials: "omit"})
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        var read = /json/.test(type) ? response.json().catch(function () { return null; }) : Promise.resolve(null);
        return read.then(function (body) {
          return {ok: response.ok, status: response.status, body: body, etag: response.headers.get("ETag"),
                  retryAfter: response.headers.get("Retry-After")};
        });
      }, function () { return {ok: false, status: 0, body: null}; });
  }

  function getItem(url) {
    return fetch(url, {headers: {Accept: "application/geo+json"}, cache: "no-store", credentials: "omit"})
      .then(function (response) {
        if (!response.ok) return {ok: false, status: response.status};
        return response.json().then(function (feature) {
          return {ok: true, status: response.status, feature: feature, etag: response.headers.get("ETag")};
        });
      }, function () { return {ok: false, status: 0}; });
  }

  // A plain sentence for an answer that is not about one field.
  function plainMessage(outcome) {
    var detail = outcome.body && outcome.body.detail ? String(outcome.body.detail) : "";
    switch (outcome.status) {
      case 0: return "The connection to the service failed or was closed. Your input is kept; check " +
        "your connection and try again (the map shows whether the change arrived).";
      case 401: return "The API key was not accepted. Check the key: sign out, then sign in with the right one. " +
        "Your input is kept.";
      case 403: return "This service does not accept changes: writing is switched off (no API key is configured).";
      case 404: return "This project no longer exists: someone deleted it.";
      case 413: return "This is too large for the service to accept.";
      case 429: return "Too many changes in a short time. Wait " + (outcome.retryAfter || "a few") +
        " seconds and try again; your input is kept.";
      case 503: return "The service cannot save changes right now (it is busy or its storage is " +
        "unavailable). Nothing was saved; your input is kept. Try again in a moment.";
      default: return "The service refused this (" + outcome.status + ")" + (detail ? ": " + detail : ".");
    }
  }

  /* ---------- the editor ---------- */

  function Editor(view) {
    this.view = view;
    this.cfg = view.cfg;
    this.map = view.map;
    this.fields = view.cfg.edit.fields;
    this.drawn = L.featureGroup().addTo(this.map);  // the shape being added or redrawn
    this.handler = null;  // the Leaflet.draw handler drawing now
    this.redraw = null;  // {feature, etag} while a project's new geometry is being drawn
    this.state = {saved: [], deleted: [], imports: 0, conflicts: 0, signedIn: false};
    var self = this;
    view.cardHooks.push(function (feature, card) { self.cardActions(feature, card); });
    this.map.on(L.Draw.Event.CREATED, function (e) { self.created(e.layer); });
    this.addControl();
  }

  Editor.prototype.key = function () { return keyStore.get(); };

  Editor.prototype.itemUrl = function (id) {
    return this.cfg.urls.item.replace("{id}", "projects").replace("{fid}", encodeURIComponent(String(id)));
  };

  Editor.prototype.addControl = function () {
    var self = this;
    var Control = L.Control.extend({
      options: {position: "topleft"},
      onAdd: function () {
        self.box = el("div", {class: "geo-edit leaflet-bar", id: "geo-edit"});
        L.DomEvent.disableClickPropagation(self.box);
        L.DomEvent.disableScrollPropagation(self.box);
        self.render();
        return self.box;
      }
    });
    new Control().addTo(this.map);
  };

  // The control: "Edit" without a key; with one, the ways to add a project (draw a point, line or
  // area with Leaflet.draw's handlers, or type coordinates), the import, and "Sign out". Its own
  // buttons rather than Leaflet.draw's toolbar: labelled, keyboard-operable, and compact enough for the
  // controls already stacked on the left.
  Editor.prototype.render = function () {
    var self = this, box = this.box, signedIn = !!this.key();
    this.state.signedIn = signedIn;
    this.stopDrawing();
    this.map.closePopup();  // the project cards show the edit actions only with a key: rebuilt on opening
    box.textContent = "";
    this.notice = null;
    if (!signedIn) {
      box.appendChild(button("Edit", function () { self.signIn(); }, {class: "geo-edit-start"}));
      this.drawn.clearLayers();
      return;
    }
    var draw = function (kind) { return function () { self.redraw = null; self.draw(kind); }; };
    box.appendChild(el("div", {class: "geo-edit-row"}, [
      el("strong", {class: "geo-edit-title", text: "Editing"}),
      button("Sign out", function () { self.signOut(); }, {class: "geo-edit-signout"})]));
    box.appendChild(el("div", {class: "geo-edit-row", role: "group", "aria-labelledby": "geo-edit-add-label"}, [
      el("span", {id: "geo-edit-add-label", text: "Add:"}),
      button("Point", draw("point"), {class: "geo-draw-point", title: "Add a project: click the map to place it"}),
      button("Line", draw("line"), {class: "geo-draw-line", title: "Add a project: draw a line on the map"}),
      button("Area", draw("area"), {class: "geo-draw-area", title: "Add a project: draw an area on the map"}),
      button("Coordinates", function () { self.stopDrawing(); self.openForm(null, null); },
             {class: "geo-edit-add", title: "Add a project: type its longitude and latitude"})]));
    box.appendChild(button("Import a spreadsheet", function () { self.importDialog(); }, {class: "geo-edit-import"}));
    this.drawBar = el("div", {class: "geo-edit-drawing", id: "geo-edit-drawing"});
    this.drawBar.hidden = true;
    box.appendChild(this.drawBar);
    this.notice = el("div", {class: "geo-edit-notice", id: "geo-edit-notice", role: "status", "aria-live": "polite"});
    box.appendChild(this.notice);
  };

  var HANDLERS = {point: "Marker", line: "Polyline", area: "Polygon"};
  var DRAW_HINTS = {point: "Click the map where the project is.",
                    line: "Click the map at each point of the line, then “Finish”.",
                    area: "Click the map at each corner of the area, then “Finish” (or click the first corner)."};

  // Draw a shape with Leaflet.draw's handler; L.Draw.Event.CREATED (see `created`) receives it.
  Editor.prototype.draw = function (kind) {
    var self = this;
    this.stopDrawing();
    var options = kind === "area" ? {allowIntersection: false, showArea: false, shapeOptions: {color: "#c0392b"}} :
      kind === "line" ? {shapeOptions: {color: "#c0392b", weight: 4}} : {};
    var handler = new L.Draw[HANDLERS[kind]](this.map, options);
    this.handler = handler;
    var bar = this.drawBar, actions = [];
    if (kind !== "point") {
      actions.push(button("Finish", function () { handler.completeShape(); }, {class: "geo-draw-finish"}));
      actions.push(button("Undo last point", function () { handler.deleteLastVertex(); }, {class: "geo-draw-undo"}));
    }
    actions.push(button("Cancel", function () { self.stopDrawing(); }, {class: "geo-draw-cancel"}));
    bar.textContent = "";
    bar.appendChild(el("div", {class: "geo-hint", text: DRAW_HINTS[kind]}));
    bar.appendChild(el("div", {class: "geo-edit-row"}, actions));
    bar.hidden = false;
    this.map.once(L.Draw.Event.DRAWSTOP, function () {
      if (self.handler === handler) { self.handler = null; bar.hidden = true; }
      // A move stopped without a new shape (Cancel, Escape): nothing to save. A drawn shape arrives
      // (CREATED) before the handler stops, so `redraw` is already cleared then.
      if (self.redraw) { self.redraw = null; self.say("Move cancelled."); }
    });
    handler.enable();
  };

  Editor.prototype.stopDrawing = function () {
    if (this.handler) this.handler.disable();
    this.handler = null;
    if (this.drawBar) this.drawBar.hidden = true;
  };

  Editor.prototype.say = function (text) {
    if (this.notice) this.notice.textContent = text;
  };

  Editor.prototype.signIn = function () {
    var self = this;
    openDialog("Sign in to edit", function (body, dialog) {
      var input = el("input", {id: "geo-key-input", type: "password", autocomplete: "off", spellcheck: "false",
                               autofocus: true, "aria-describedby": "geo-key-help"});
      var form = el("form", {class: "geo-form", id: "geo-signin-form", novalidate: true}, [
        el("div", {class: "geo-field"}, [el("label", {for: "geo-key-input", text: "API key"}), input,
          el("div", {class: "geo-hint", id: "geo-key-help",
                     text: "Kept in this browser tab only, until you sign out or close the tab."})]),
        el("div", {class: "geo-error", id: "geo-key-error", role: "alert"}),
        el("div", {class: "geo-actions"}, [el("button", {type: "submit", text: "Sign in", class: "geo-primary"}),
                                           button("Cancel", function () { dialog.close(); })])
      ]);
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        var key = input.value.trim();
        if (!key) { form.querySelector("#geo-key-error").textContent = "Enter the API key."; return; }
        keyStore.set(key);
        dialog.close();
        self.render();
        var first = self.box.querySelector(".geo-draw-point");
        if (first) first.focus();
      });
      body.appendChild(form);
    });
  };

  Editor.prototype.signOut = function () {
    keyStore.clear();
    this.map.closePopup();
    this.render();
    var start = this.box.querySelector("button");
    if (start) start.focus();
  };

  /* ---------- the popup's actions ---------- */

  Editor.prototype.cardActions = function (feature, card) {
    if (!this.key() || feature.id === undefined || this.cfg.embedded) return;
    var self = this;
    var start = function (action) {
      return function () { self.startEdit(feature.id, action); };
    };
    card.appendChild(el("div", {class: "geo-card-actions"}, [
      button("Edit", start("edit"), {class: "geo-act-edit"}),
      button("Change status", start("status"), {class: "geo-act-status"}),
      button("Move / redraw", start("move"), {class: "geo-act-move"}),
      button("Delete", start("delete"), {class: "geo-act-delete"})
    ]));
  };

  // Every edit starts from the project as stored now, and its ETag (sent back as If-Match).
  Editor.prototype.startEdit = function (id, action) {
    var self = this;
    return getItem(this.itemUrl(id)).then(function (got) {
      if (!got.ok) { self.say(plainMessage({status: got.status, body: null})); return; }
      var current = {feature: got.feature, etag: got.etag};
      if (action === "edit") self.openForm(null, current);
      else if (action === "status") self.statusDialog(current);
      else if (action === "delete") self.deleteDialog(current);
      else self.startRedraw(current);
    });
  };

  /* ---------- the project form (add and edit) ---------- */

  Editor.prototype.input = function (field, value) {
    var id = "geo-f-" + field.name, attrs = {id: id, name: field.name, "aria-describedby": "geo-err-" + field.name};
    if (field.required) attrs["aria-required"] = "true";
    var node;
    if (field.values && field.values.length) {
      node = el("select", attrs, [el("option", {value: "", text: "Choose…"})].concat(field.values.map(function (v) {
        return el("option", {value: v, text: label(v)});
      })));
      node.value = value === undefined || value === null ? "" : String(value);
      return node;
    }
    if (field.name === "description") {
      node = el("textarea", Object.assign(attrs, {rows: 3, dir: "auto"}));
    } else {
      var type = {number: "number", date: "date"}[field.kind] || (field.name === "source_url" ? "url" : "text");
      node = el("input", Object.assign(attrs, {type: type}));
      if (type === "number") { node.min = "0"; node.step = "any"; node.inputMode = "decimal"; }
      if (field.name === "name_prs" || field.name === "name_ps") {
        node.dir = "rtl";
        node.lang = field.name === "name_prs" ? "prs" : "ps";
        node.className = "geo-rtl";
      } else if (type === "text") {
        node.dir = "auto";
      }
    }
    if (Array.isArray(value)) node.value = value.join(", ");
    else if (value !== undefined && value !== null) node.value = String(value);
    return node;
  };

  Editor.prototype.readField = function (form, field) {
    var raw = form.elements[field.name].value;
    var text = typeof raw === "string" ? raw.trim() : raw;
    if (text === "") return null;
    if (field.kind === "number") {
      var n = Number(text);
      return isFinite(n) ? n : text;  // a non-number goes to the service, which names the field
    }
    if (field.kind === "array") {
      var items = text.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
      return items.length ? items : null;
    }
    return text;
  };

  // The form for a new project (`geometry` drawn, or typed as longitude and latitude) or for an
  // existing one (`current`: {feature, etag}).
  Editor.prototype.openForm = function (geometry, current) {
    var self = this, editing = !!current;
    var props = editing ? (current.feature.properties || {}) : {status: "proposed"};
    var shape = editing ? current.feature.geometry : geometry;
    var title = editing ? "Edit “" + (props.name || current.feature.id) + "”" : "Add a project";
    return openDialog(title, function (body, dialog) {
      var form = el("form", {class: "geo-form", id: "geo-project-form", novalidate: true});
      form.appendChild(el("div", {class: "geo-error geo-form-error", id: "geo-form-error", role: "alert"}));
      form.appendChild(self.locationPart(shape));
      form.appendChild(el("div", {class: "geo-field geo-province"}, [
        el("span", {class: "geo-form-label", text: "Province"}),
        el("output", {id: "geo-province", text: props.province_name ?
          props.province_name + " (" + props.province + ")" : "Assigned by the service from the location."})
      ]));
      self.fields.forEach(function (field) {
        var text = field.title + (field.required ? " (required)" : "");
        var hint = field.kind === "array" ? "Separate several with commas." :
          field.name === "budget_usd" ? "A number, e.g. 1500000." : null;
        form.appendChild(el("div", {class: "geo-field", id: "geo-field-" + field.name}, [
          el("label", {for: "geo-f-" + field.name, text: text}),
          self.input(field, props[field.name]),
          hint ? el("div", {class: "geo-hint", text: hint}) : null,
          el("div", {class: "geo-error", id: "geo-err-" + field.name})
        ]));
      });
      form.appendChild(el("div", {class: "geo-actions"}, [
        el("button", {type: "submit", class: "geo-primary", text: editing ? "Save changes" : "Add the project"}),
        button("Cancel", function () { dialog.close(); })
      ]));
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        self.submitForm(form, dialog, shape, current);
      });
      body.appendChild(form);
    }, {onClose: function () { if (!editing) self.drawn.clearLayers(); }});
  };

  // The location: a point's longitude and latitude (typed, or filled from the map), or the drawn shape.
  Editor.prototype.locationPart = function (shape) {
    var part = el("fieldset", {class: "geo-location", id: "geo-field-geometry", "aria-describedby": "geo-err-geometry"});
    part.appendChild(el("legend", {text: "Location"}));
    if (!shape || shape.type === "Point") {
      var at = shape ? shape.coordinates : [null, null];
      var lon = el("input", {id: "geo-f-lon", name: "lon", type: "number", step: "any", inputmode: "decimal",
                             "aria-describedby": "geo-err-geometry"});
      var lat = el("input", {id: "geo-f-lat", name: "lat", type: "number", step: "any", inputmode: "decimal",
                             "aria-describedby": "geo-err-geometry"});
      if (at[0] !== null) { lon.value = String(at[0]); lat.value = String(at[1]); }
      part.appendChild(el("div", {class: "geo-pair"}, [
        el("div", {class: "geo-field"}, [el("label", {for: "geo-f-lon", text: "Longitude (east, degrees)"}), lon]),
        el("div", {class: "geo-field"}, [el("label", {for: "geo-f-lat", text: "Latitude (north, degrees)"}), lat])
      ]));
      if (!shape) {
        part.appendChild(el("div", {class: "geo-hint",
          text: "Type the point's coordinates (Kabul is about 69.17, 34.53), or close this form and place it " +
                "on the map with the drawing tools."}));
      }
    } else {
      // A polygon's ring repeats its first corner at the end.
      var text = shape.type === "LineString" ? "A line of " + shape.coordinates.length + " points" :
        shape.type === "Polygon" ? "An area of " + (shape.coordinates[0].length - 1) + " corners" :
        "A shape of several parts (" + shape.type + ")";
      part.appendChild(el("p", {class: "geo-hint", text: text + ", drawn on the map."}));
    }
    part.appendChild(el("div", {class: "geo-error", id: "geo-err-geometry"}));
    return part;
  };

  Editor.prototype.clearErrors = function (form) {
    Array.prototype.forEach.call(form.querySelectorAll(".geo-error"), function (node) { node.textContent = ""; });
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (node) {
      node.removeAttribute("aria-invalid");
    });
  };

  // Each of the problem's errors[] next to the field it names; the rest at the top of the form.
  Editor.prototype.showProblem = function (form, outcome) {
    var self = this, errors = (outcome.body && Array.isArray(outcome.body.errors)) ? outcome.body.errors : [];
    var general = form.querySelector(".geo-form-error"), placed = 0, firstInvalid = null;
    errors.forEach(function (error) {
      var field = String(error.field || ""), message = String(error.message || "");
      var name = field.indexOf("geometry") === 0 ? "geometry" :
        field.indexOf("properties.") === 0 ? field.slice("properties.".length).split(".")[0] : field;
      var slot = form.querySelector("#geo-err-" + CSS.escape(name));
      if (!slot) return;
      slot.textContent = (slot.textContent ? slot.textContent + " " : "") + message;
      var control = name === "geometry" ? form.querySelector("#geo-f-lon") || form.querySelector("#geo-field-geometry")
        : form.elements[name];
      if (control && control.setAttribute) control.setAttribute("aria-invalid", "true");
      firstInvalid = firstInvalid || control;
      placed += 1;
    });
    if (placed < errors.length || !errors.length) {
      general.textContent = errors.length ? String(outcome.body.detail || "") : plainMessage(outcome);
      if (outcome.status === 401) {
        // The key can be put right without losing the form: the sign-in dialog opens over it.
        general.appendChild(el("div", {}, [button("Enter the key again", function () { self.signIn(); },
                                                  {class: "geo-rekey"})]));
      }
    } else {
      general.textContent = "Please correct the marked " + (placed === 1 ? "field." : "fields.");
    }
    if (firstInvalid && firstInvalid.focus) firstInvalid.focus();
  };

  Editor.prototype.formGeometry = function (form, shape) {
    if (shape && shape.type !== "Point") return shape;
    var lon = form.elements.lon.value.trim(), lat = form.elements.lat.value.trim();
    if (lon === "" && lat === "") return null;
    // An empty half is NaN (Number("") would be 0, a place in the sea off Africa).
    return {type: "Point", coordinates: [lon === "" ? NaN : Number(lon), lat === "" ? NaN : Number(lat)]};
  };

  Editor.prototype.submitForm = function (form, dialog, shape, current) {
    var self = this, editing = !!current;
    this.clearErrors(form);
    var geometry = this.formGeometry(form, shape);
    var unplaced = !geometry ? "Place the project: type its longitude and latitude, or draw it on the map." :
      geometry.type === "Point" && !geometry.coordinates.every(isFinite) ?
        "Type both the longitude and the latitude as numbers." : "";
    if (unplaced) {
      form.querySelector("#geo-err-geometry").textContent = unplaced;
      form.querySelector("#geo-f-lon").focus();
      return null;
    }
    var props = {};
    this.fields.forEach(function (field) {
      var value = self.readField(form, field);
      if (value !== null) props[field.name] = value;
      else if (editing) props[field.name] = null;  // a merge patch: an emptied field is removed
    });
    var submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    var request = editing ?
      send("PATCH", this.itemUrl(current.feature.id), this.key(), {
        type: "application/merge-patch+json", etag: current.etag,
        body: JSON.stringify(this.changedGeometry(current.feature.geometry, geometry) ?
          {properties: props, geometry: geometry} : {properties: props})}) :
      send("POST", this.cfg.urls.items.replace("{id}", "projects"), this.key(), {
        type: "application/geo+json",
        body: JSON.stringify({type: "Feature", geometry: geometry, properties: props})});
    return request.then(function (outcome) {
      submit.disabled = false;
      if (outcome.ok) {
        dialog.close();
        self.saved(outcome.body, editing);
        return;
      }
      if (outcome.status === 412 && editing) { self.conflict(form, current, dialog); return; }
      self.showProblem(form, outcome);
    });
  };

  Editor.prototype.changedGeometry = function (before, after) {
    return JSON.stringify(before) !== JSON.stringify(after);
  };

  // After a write: say so (with the province the service assigned) and show the map as it is now.
  Editor.prototype.saved = function (feature, editing) {
    var self = this, p = feature.properties || {};
    this.state.saved.push({id: feature.id, province: p.province || null, editing: editing});
    this.drawn.clearLayers();
    this.map.closePopup();
    this.say((editing ? "Saved “" : "Added “") + (p.name || feature.id) + "”" +
             (p.province_name ? " in " + p.province_name + " province (" + p.province + ")." : "."));
    return this.view.reload().then(function () { self.view.openProject(feature.id); });
  };

  // 412: someone else changed the project since it was read. Show what differs and offer to reload.
  Editor.prototype.conflict = function (form, current, dialog) {
    var self = this;
    this.state.conflicts += 1;
    var general = form.querySelector(".geo-form-error");
    return getItem(this.itemUrl(current.feature.id)).then(function (got) {
      general.textContent = "";
      if (!got.ok) {
        general.appendChild(el("p", {text: got.status === 404 ? "Someone else deleted this project meanwhile." :
          plainMessage({status: got.status})}));
        general.appendChild(button("Close and reload the map", function () { dialog.close(); self.view.reload(); },
                                   {class: "geo-reload"}));
        return;
      }
      general.appendChild(el("p", {text: "Someone else changed this project after you opened it; nothing was " +
        "saved. Their version differs in:"}));
      general.appendChild(self.differences(current.feature, got.feature));
      general.appendChild(button("Reload their version", function () {
        dialog.close();
        self.view.reload();
        self.openForm(null, {feature: got.feature, etag: got.etag});
      }, {class: "geo-reload"}));
      general.querySelector(".geo-reload").focus();
    });
  };

  Editor.prototype.differences = function (mine, theirs) {
    var a = mine.properties || {}, b = theirs.properties || {};
    var rows = this.fields.filter(function (f) { return JSON.stringify(a[f.name]) !== JSON.stringify(b[f.name]); })
      .map(function (f) {
        var show = function (v) { return v === undefined || v === null ? "(empty)" : Array.isArray(v) ? v.join(", ") : label(v); };
        return el("tr", {}, [el("th", {scope: "row", text: f.title}), el("td", {dir: "auto", text: show(a[f.name])}),
                             el("td", {dir: "auto", text: show(b[f.name])})]);
      });
    if (JSON.stringify(mine.geometry) !== JSON.stringify(theirs.geometry)) {
      rows.push(el("tr", {}, [el("th", {scope: "row", text: "Location"}), el("td", {text: "as before"}),
                              el("td", {text: "moved"})]));
    }
    if (!rows.length) {
      rows.push(el("tr", {}, [el("td", {colspan: 3, text: "Nothing you can see here (another property, or its history)."})]));
    }
    return el("table", {class: "geo-diff"}, [
      el("thead", {}, [el("tr", {}, [el("th", {scope: "col", text: "Field"}), el("th", {scope: "col", text: "You started from"}),
                                      el("th", {scope: "col", text: "Now"})])]),
      el("tbody", {}, rows)]);
  };

  /* ---------- status, delete, move ---------- */

  Editor.prototype.statusDialog = function (current) {
    var self = this, p = current.feature.properties || {};
    var field = this.fields.filter(function (f) { return f.name === "status"; })[0];
    return openDialog("Change the status of “" + (p.name || current.feature.id) + "”", function (body, dialog) {
      var form = el("form", {class: "geo-form", id: "geo-status-form", novalidate: true});
      form.appendChild(el("div", {class: "geo-error geo-form-error", role: "alert"}));
      form.appendChild(el("div", {class: "geo-field"}, [el("label", {for: "geo-f-status", text: "New status"}),
                                                       self.input(field, p.status),
                                                       el("div", {class: "geo-error", id: "geo-err-status"})]));
      // The API records each status change in status_history with its time; it has no way to send a
      // note with it (ProjectProperties forbids unknown properties, and status_history is set by the
      // server only), so this form offers none.
      form.appendChild(el("p", {class: "geo-hint", text: "The change is added to the project's status history with " +
        "today's date."}));
      form.appendChild(el("div", {class: "geo-actions"}, [el("button", {type: "submit", class: "geo-primary", text: "Change status"}),
                                                         button("Cancel", function () { dialog.close(); })]));
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        self.clearErrors(form);
        send("PATCH", self.itemUrl(current.feature.id), self.key(), {
          type: "application/merge-patch+json", etag: current.etag,
          body: JSON.stringify({properties: {status: form.elements.status.value || null}})
        }).then(function (outcome) {
          if (outcome.ok) { dialog.close(); self.saved(outcome.body, true); return; }
          if (outcome.status === 412) { self.conflict(form, current, dialog); return; }
          self.showProblem(form, outcome);
        });
      });
      body.appendChild(form);
    });
  };

  Editor.prototype.deleteDialog = function (current) {
    var self = this, p = current.feature.properties || {};
    return openDialog("Delete “" + (p.name || current.feature.id) + "”?", function (body, dialog) {
      var form = el("form", {class: "geo-form", id: "geo-delete-form", novalidate: true});
      form.appendChild(el("p", {text: "The project is removed from the service for everyone. This cannot be undone."}));
      form.appendChild(el("div", {class: "geo-error geo-form-error", role: "alert"}));
      var cancel = button("Cancel", function () { dialog.close(); }, {autofocus: true});
      form.appendChild(el("div", {class: "geo-actions"}, [
        el("button", {type: "submit", class: "geo-danger", text: "Delete the project"}), cancel]));
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        send("DELETE", self.itemUrl(current.feature.id), self.key(), {etag: current.etag}).then(function (outcome) {
          if (outcome.ok) {
            dialog.close();
            self.state.deleted.push(current.feature.id);
            self.map.closePopup();
            self.say("Deleted “" + (p.name || current.feature.id) + "”.");
            self.view.reload();
            return;
          }
          if (outcome.status === 412) { self.conflict(form, current, dialog); return; }
          self.showProblem(form, outcome);
        });
      });
      body.appendChild(form);
    });
  };

  // Move or redraw: draw the new shape (same kind) on the map; it is saved on completion.
  Editor.prototype.startRedraw = function (current) {
    var kind = current.feature.geometry ? current.feature.geometry.type : "Point";
    this.map.closePopup();
    this.draw(/Polygon/.test(kind) ? "area" : /LineString/.test(kind) ? "line" : "point");
    this.redraw = current;
    this.say(/Point/.test(kind) ? "Moving “" + (current.feature.properties.name || current.feature.id) + "”: click " +
             "its new place on the map (or use “Edit” to type its coordinates)." :
             "Redrawing “" + (current.feature.properties.name || current.feature.id) + "”: draw its new shape.");
  };

  Editor.prototype.created = function (layer) {
    var geometry = layer.toGeoJSON().geometry, self = this;
    if (this.redraw) {
      var current = this.redraw;
      this.redraw = null;
      send("PATCH", this.itemUrl(current.feature.id), this.key(), {
        type: "application/merge-patch+json", etag: current.etag, body: JSON.stringify({geometry: geometry})
      }).then(function (outcome) {
        if (outcome.ok) { self.saved(outcome.body, true); return; }
        if (outcome.status === 412) {
          self.state.conflicts += 1;
          self.say("Someone else changed this project after you started; nothing was saved. The map now shows " +
                   "their version: open it and move it again.");
          self.view.reload();
          return;
        }
        var errors = outcome.body && outcome.body.errors;
        self.say(errors && errors.length ? "Not moved: " + errors.map(function (e) { return e.message; }).join("; ")
                 : plainMessage(outcome));
      });
      return;
    }
    this.drawn.clearLayers();
    this.drawn.addLayer(layer);
    this.openForm(geometry, null);
  };

  /* ---------- import ---------- */

  Editor.prototype.importDialog = function () {
    var self = this;
    return openDialog("Import a spreadsheet", function (body, dialog) {
      var input = el("input", {id: "geo-import-file", type: "file", accept: ".csv,.xlsx,.geojson,.json,.gpkg",
                               "aria-describedby": "geo-import-help geo-err-file"});
      var form = el("form", {class: "geo-form", id: "geo-import-form", novalidate: true}, [
        el("div", {class: "geo-field"}, [
          el("label", {for: "geo-import-file", text: "Spreadsheet or GIS file"}), input,
          el("div", {class: "geo-hint", id: "geo-import-help", text: "CSV, Excel (.xlsx), GeoJSON or GeoPackage. It is " +
            "checked first; nothing is written until you confirm."}),
          el("div", {class: "geo-error", id: "geo-err-file"})]),
        el("div", {class: "geo-error geo-form-error", role: "alert"}),
        el("div", {class: "geo-actions"}, [el("button", {type: "submit", class: "geo-primary", text: "Check the file"}),
                                           button("Close", function () { dialog.close(); })]),
        el("div", {class: "geo-import-report", id: "geo-import-report", "aria-live": "polite"})
      ]);
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        self.runImport(form, input.files && input.files[0], true);
      });
      body.appendChild(form);
    }, {wide: true});
  };

  Editor.prototype.runImport = function (form, file, dryRun) {
    var self = this, report = form.querySelector("#geo-import-report");
    this.clearErrors(form);
    if (!file) { form.querySelector("#geo-err-file").textContent = "Choose a file first."; return null; }
    var ext = (file.name.split(".").pop() || "").toLowerCase();
    var type = FILE_TYPES[ext];
    if (!type) {
      form.querySelector("#geo-err-file").textContent = "This kind of file cannot be imported: use .csv, .xlsx, " +
        ".geojson or .gpkg.";
      return null;
    }
    report.textContent = dryRun ? "Checking…" : "Importing…";
    var url = this.cfg.edit.urls["import"] + "?dry_run=" + (dryRun ? "true" : "false");
    return file.arrayBuffer().then(function (bytes) {
      // The name tells the service the format too; a header carries Latin-1 only, so others are left out.
      var headers = /^[\x20-\x7e]{1,200}$/.test(file.name) ? {"X-Filename": file.name} : {};
      return send("POST", url, self.key(), {type: type, body: bytes, headers: headers});
    }).then(function (outcome) {
      report.textContent = "";
      if (!outcome.ok || !outcome.body) {
        var errors = outcome.body && outcome.body.errors;
        if (errors && errors.length) {
          form.querySelector("#geo-err-file").textContent = errors.map(function (e) {
            return (e.field ? e.field + ": " : "") + e.message;
          }).join(" ");
        } else {
          form.querySelector(".geo-form-error").textContent = outcome.status === 404 || outcome.status === 405 ?
            "This service does not offer imports." : plainMessage(outcome);
        }
        return;
      }
      self.showReport(report, outcome.body, form, file);
      if (!dryRun) {
        self.state.imports += 1;
        self.say("Imported " + outcome.body.imported + " projects.");
        self.view.reload();
      }
    });
  };

  Editor.prototype.showReport = function (box, doc, form, file) {
    var self = this, rejected = doc.rejected || [], duplicates = doc.duplicates || [];
    var written = !!doc.written;
    box.appendChild(el("h3", {text: written ? "Imported" : doc.dry_run ? "Check of the file (nothing written yet)" :
      "Nothing was written"}));
    box.appendChild(el("table", {class: "geo-report-summary"}, [el("tbody", {}, [
      ["Rows read", doc.read], [written ? "Imported" : "Would be imported", doc.imported],
      ["Rejected rows", typeof doc.rejected_rows === "number" ? doc.rejected_rows : rejected.length],
      [doc.duplicates_allowed ? "Duplicates (imported all the same)" : "Duplicates (skipped)", duplicates.length]
    ].concat(doc.skipped && doc.skipped.length ? [["Example rows (skipped)", doc.skipped.length]] : []).map(function (r) { return el("tr", {}, [el("th", {scope: "row", text: r[0]}), el("td", {text: String(r[1])})]); }))]));
    if (rejected.length) {
      box.appendChild(el("table", {class: "geo-report", id: "geo-report-rejected"}, [
        el("caption", {text: "Rejected rows"}),
        el("thead", {}, [el("tr", {}, ["Row", "Field", "Reason"].map(function (h) { return el("th", {scope: "col", text: h}); }))]),
        el("tbody", {}, rejected.map(function (r) {
          return el("tr", {}, [el("td", {text: String(r.row)}), el("td", {text: r.field || r.column || ""}),
                               el("td", {dir: "auto", text: String(r.reason || "")})]);
        }))]));
    }
    if (duplicates.length) {
      box.appendChild(el("table", {class: "geo-report", id: "geo-report-duplicates"}, [
        el("caption", {text: "Duplicates of existing projects"}),
        el("thead", {}, [el("tr", {}, ["Row", "Same as", "Distance"].map(function (h) { return el("th", {scope: "col", text: h}); }))]),
        el("tbody", {}, duplicates.map(function (d) {
          return el("tr", {}, [el("td", {text: String(d.row)}), el("td", {text: String(d.of)}),
                               el("td", {text: Math.round(Number(d.distance_m) || 0) + " m"})]);
        }))]));
    }
    if (doc.dry_run && doc.imported > 0) {
      box.appendChild(el("div", {class: "geo-actions"}, [button("Confirm import of " + doc.imported +
        (doc.imported === 1 ? " project" : " projects"), function () {
          box.textContent = "";
          self.runImport(form, file, false);
        }, {class: "geo-primary geo-confirm-import"})]));
    }
  };

  window.GeoEditor = {
    editor: null,
    start: function (view) {
      if (!view || !view.cfg.edit || view.cfg.embedded || !window.L || !L.Draw) return null;
      var editor = new Editor(view);
      window.GeoEditor.editor = editor;
      window.GeoEditor.state = editor.state;
      return editor;
    }
  };
})();
