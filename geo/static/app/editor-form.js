/* The map editor's project form (add and edit), its errors, the status change, the deletion and what
 * happens on a 412 (see editor.js for the rules every part keeps: text only, no inline code, modal
 * dialogs). Loaded after editor.js, whose Editor it extends. */
(function () {
  "use strict";

  var lib = window.GeoEditor.lib, Editor = window.GeoEditor.Editor;
  var el = lib.el, label = lib.label, button = lib.button, openDialog = lib.openDialog, send = lib.send,
      getItem = lib.getItem, plainMessage = lib.plainMessage;

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
        field.indexOf("properties.") === 0 ? field.slice("properties.".length).split(".")[0] :
        /^status_change\.note/.test(field) ? "note" : /^status_change\.source/.test(field) ? "change_source" : field;
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

  // `duplicate`: add it although the service found a project of the same name and category nearby.
  Editor.prototype.submitForm = function (form, dialog, shape, current, duplicate) {
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
      send("POST", this.cfg.urls.items.replace("{id}", "projects") + (duplicate ? "?duplicate=allow" : ""), this.key(), {
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
      var errors = (outcome.body && outcome.body.errors) || [];
      var twin = errors.filter(function (e) { return e && e.duplicate_of; })[0];
      if (outcome.status === 409 && twin && !editing) {
        // The service's duplicate guard: the person decides whether it is another project.
        form.querySelector(".geo-form-error").appendChild(el("div", {class: "geo-actions"}, [
          button("It is a different project: add it anyway", function () {
            self.submitForm(form, dialog, shape, current, true);
          }, {class: "geo-add-anyway"})]));
      }
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

  // The service's status workflow (GET /collections/projects/workflow: the statuses each may change
  // to, and the member that carries a change's note), read once; null where the service has none.
  Editor.prototype.workflow = function () {
    if (!this.workflowRequest) {
      this.workflowRequest = fetch(this.cfg.edit.urls.workflow, {headers: {Accept: "application/json"},
                                                                 credentials: "omit"})
        .then(function (r) { return r.ok ? r.json() : null; }, function () { return null; })
        .catch(function () { return null; });
    }
    return this.workflowRequest;
  };

  Editor.prototype.statusDialog = function (current) {
    var self = this;
    return this.workflow().then(function (workflow) { return self.statusForm(current, workflow); });
  };

  Editor.prototype.statusForm = function (current, workflow) {
    var self = this, p = current.feature.properties || {};
    var field = this.fields.filter(function (f) { return f.name === "status"; })[0];
    var next = workflow && workflow.transitions && workflow.transitions[p.status];
    if (next) {
      // Only the statuses the workflow allows from this one (and the current one, which changes nothing).
      field = Object.assign({}, field, {values: field.values.filter(function (v) {
        return v === p.status || next.indexOf(v) >= 0;
      })});
    }
    var member = workflow && workflow.change && workflow.change.member;
    return openDialog("Change the status of “" + (p.name || current.feature.id) + "”", function (body, dialog) {
      var form = el("form", {class: "geo-form", id: "geo-status-form", novalidate: true});
      form.appendChild(el("div", {class: "geo-error geo-form-error", role: "alert"}));
      form.appendChild(el("div", {class: "geo-field"}, [el("label", {for: "geo-f-status", text: "New status"}),
                                                       self.input(field, p.status),
                                                       el("div", {class: "geo-error", id: "geo-err-status"})]));
      if (next && !next.length) {
        form.appendChild(el("p", {class: "geo-hint", text: "“" + label(p.status) + "” is final: it cannot change."}));
      }
      if (member) {
        // The note and its source go into the new status_history entry (the workflow's `change` member).
        form.appendChild(el("div", {class: "geo-field"}, [
          el("label", {for: "geo-f-note", text: "Note: why the status changes"}),
          el("textarea", {id: "geo-f-note", name: "note", rows: 3, dir: "auto", "aria-describedby": "geo-err-note"}),
          el("div", {class: "geo-error", id: "geo-err-note"})]));
        form.appendChild(el("div", {class: "geo-field"}, [
          el("label", {for: "geo-f-change_source", text: "Source (a link that documents it)"}),
          el("input", {id: "geo-f-change_source", name: "change_source", type: "url",
                       "aria-describedby": "geo-err-change_source"}),
          el("div", {class: "geo-error", id: "geo-err-change_source"})]));
      }
      form.appendChild(el("p", {class: "geo-hint", text: "The change is added to the project's status history with " +
        "today's date."}));
      form.appendChild(el("div", {class: "geo-actions"}, [el("button", {type: "submit", class: "geo-primary", text: "Change status"}),
                                                         button("Cancel", function () { dialog.close(); })]));
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        self.clearErrors(form);
        var patch = {properties: {status: form.elements.status.value || null}};
        if (member) {
          var note = form.elements.note.value.trim(), source = form.elements.change_source.value.trim();
          if (note || source) {
            patch[member] = {};
            if (note) patch[member].note = note;
            if (source) patch[member].source = source;
          }
        }
        send("PATCH", self.itemUrl(current.feature.id), self.key(), {
          type: "application/merge-patch+json", etag: current.etag, body: JSON.stringify(patch)
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
})();
