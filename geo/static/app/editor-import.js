/* The map editor's "Import a spreadsheet": the file goes to POST /collections/projects/import as it is
 * (Content-Type by its extension), first as a dry run whose report is shown as tables, then, confirmed,
 * for real. Loaded after editor.js, whose Editor it extends. */
(function () {
  "use strict";

  var lib = window.GeoEditor.lib, Editor = window.GeoEditor.Editor;
  var el = lib.el, button = lib.button, openDialog = lib.openDialog, send = lib.send,
      plainMessage = lib.plainMessage;

  var FILE_TYPES = {
    csv: "text/csv",
    xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    geojson: "application/geo+json",
    json: "application/geo+json",
    gpkg: "application/geopackage+sqlite3"
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
})();
