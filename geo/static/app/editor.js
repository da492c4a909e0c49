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
 *
 * This file: the helpers, the key, dialogs, requests, the control, drawing, and the popup's actions;
 * editor-form.js: the project form, status, delete and conflicts; editor-import.js: the import.
 */
(function () {
  "use strict";

  var KEY_NAME = "geo-editor-key";
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
      case 403: return "Not allowed: this key may not make this change (its role does not allow it), or the " +
        "service accepts no changes" + (detail ? " (" + detail + ")" : "") + ".";
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

  // editor-form.js and editor-import.js (loaded after this file) add the forms and the import to
  // Editor.prototype, with these helpers.
  window.GeoEditor = {
    Editor: Editor,
    lib: {el: el, label: label, button: button, openDialog: openDialog, send: send, getItem: getItem,
          plainMessage: plainMessage},
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
