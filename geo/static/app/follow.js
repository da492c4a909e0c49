/* The web map follows the changes feed (GET /changes): two people with the map open see each other's
 * changes within a few seconds, without reloading.
 *
 * It polls the feed every cfg.follow_s seconds (one request at a time, never stacked), from shortly
 * before the page opened, and hands each change to the map (geomap.js putProject / removeProject):
 * create, update, status and restore show the project as the change left it; delete removes it.
 * Changes arrive in order and carry the whole project, so applying one twice, or one the page already
 * shows, ends in the same picture. Polling pauses while the tab is hidden and catches up on return;
 * after a failed request it waits twice as long each time (up to MAX_WAIT_MS).
 *
 * Safety: nothing from the feed is written as HTML; the "Live" notice is set through textContent.
 */
(function () {
  "use strict";

  // The first request asks from this long before the page opened: a browser clock ahead of the
  // server's would otherwise miss the changes made while the page loaded. Replaying older ones is
  // harmless (see above).
  var SKEW_MS = 5 * 60 * 1000;
  var MAX_WAIT_MS = 60 * 1000;
  var LIMIT = 200;

  function Follower(view) {
    var cfg = view.cfg;
    this.view = view;
    this.url = cfg.urls.changes;
    this.every = Math.max(0.2, Number(cfg.follow_s) || 2.5) * 1000;
    this.opened = Date.now();
    this.openedOnServer = this.opened;  // corrected by the server's Date header on the first answer
    this.since = new Date(this.opened - SKEW_MS).toISOString();
    this.timer = null;
    this.busy = false;
    this.failures = 0;
    this.dirty = false;  // changes applied whose figures were not asked for yet
    // Changes received, each with the map's load number at the time (see replay).
    this.log = [];
    this.notice = null;
    // Read by the tests (and handy in the console).
    this.state = {polls: 0, changes: 0, since_opened: 0, cursor: null, errors: 0, paused: false,
                  reloads: 0, wait: 0};
  }

  Follower.prototype.start = function () {
    var self = this;
    this.addNotice();
    // A reload of the map (a filter changed, the editor saved) shows the projects as they were when it
    // asked: the changes received since it began are applied again on top of it.
    this.view.loadHooks.push(function (ticket) { self.replay(ticket); });
    document.addEventListener("visibilitychange", function () { self.visibility(); });
    if (document.visibilityState === "hidden") this.state.paused = true;
    else this.poll();
    return this;
  };

  Follower.prototype.visibility = function () {
    if (document.visibilityState === "hidden") {
      this.state.paused = true;
      clearTimeout(this.timer);
      this.timer = null;
    } else if (this.state.paused) {
      this.state.paused = false;
      this.poll();  // catch up at once
    }
  };

  Follower.prototype.schedule = function (ms) {
    var self = this;
    clearTimeout(this.timer);
    this.timer = null;
    this.state.wait = ms;
    if (this.state.paused) return;
    this.timer = setTimeout(function () { self.timer = null; self.poll(); }, ms);
  };

  Follower.prototype.poll = function () {
    var self = this;
    if (this.busy || this.state.paused) return;
    this.busy = true;
    this.state.polls += 1;
    var query = new URLSearchParams({since: this.state.cursor || this.since, limit: String(LIMIT)});
    fetch(this.url + "?" + query.toString(), {headers: {Accept: "application/json"}, cache: "no-store"})
      .then(function (response) {
        if (!response.ok) throw new Error(self.url + " answered " + response.status);
        if (self.state.polls === 1) self.clock(response.headers.get("Date"));
        return response.json();
      })
      .then(function (doc) {
        self.busy = false;
        self.failures = 0;
        self.take(doc.changes || [], !!doc.more);
        if (doc.cursor !== undefined && doc.cursor !== null) self.state.cursor = String(doc.cursor);
        self.say();
        self.schedule(doc.more ? 0 : self.every);
      })
      .catch(function (error) {
        self.busy = false;
        self.failures += 1;
        self.state.errors += 1;
        if (window.console) console.warn("geomap follow:", error);
        self.say();
        self.schedule(Math.min(MAX_WAIT_MS, self.every * Math.pow(2, self.failures)));
      });
  };

  // The server's clock, from its Date header (whole seconds): to count the changes made since the page
  // opened by the server's time, which is the time the changes carry.
  Follower.prototype.clock = function (header) {
    var server = header ? Date.parse(header) : NaN;
    if (!isNaN(server) && Math.abs(server - Date.now()) > 2000) {
      this.openedOnServer = this.opened + (server - Date.now());
    }
  };

  // `more`: another page follows at once; the figures (or the whole layer) are asked for after the last.
  Follower.prototype.take = function (changes, more) {
    var self = this, view = this.view, ticket = view.state.loads;
    changes.forEach(function (change) {
      if (change.collection !== "projects") return;
      self.state.changes += 1;
      if (Date.parse(change.at) >= self.openedOnServer - 1000) self.state.since_opened += 1;
      // Kept only while a load is in progress (replay() applies them after it); on a drawn map they
      // are applied below, and a later load's answer holds them.
      if (!view.state.ready) self.log.push({change: change, ticket: ticket});
      self.dirty = true;
    });
    if (!view.state.ready) return;
    if (!view.needsReload()) changes.forEach(function (change) { self.apply(change); });
    if (more || !this.dirty) return;
    this.dirty = false;
    if (view.needsReload()) {
      // The page's address filters by more than the panel's fields (bbox, datetime, CQL2): the server
      // decides what it keeps.
      this.state.reloads += 1;
      view.reload();
    } else {
      view.refreshStats();
    }
  };

  Follower.prototype.apply = function (change) {
    if (change.collection !== "projects") return;
    if (change.op === "delete" || !change.feature) this.view.removeProject(change.id);
    else this.view.putProject(change.feature);
  };

  Follower.prototype.replay = function (ticket) {
    var self = this, again = this.log.filter(function (entry) { return entry.ticket >= ticket; });
    // Applied now, what this load's answer may lack; only a newer load still under way needs any later.
    this.log = again.filter(function (entry) { return entry.ticket > ticket; });
    // A page that reloads instead (needsReload) keeps `dirty`: the next answer reloads it once more,
    // since this load may have asked before those changes were made.
    if (!again.length || this.view.needsReload()) return;
    again.forEach(function (entry) { self.apply(entry.change); });
    this.dirty = false;
    this.view.refreshStats();
  };

  /* ---------- the "Live" notice ---------- */

  Follower.prototype.addNotice = function () {
    var self = this;
    var Notice = L.Control.extend({
      options: {position: "bottomleft"},
      onAdd: function () {
        // A status message, read out politely when it changes (only on a new count or a problem).
        self.notice = document.createElement("div");
        self.notice.className = "geo-live";
        self.notice.id = "geo-live";
        self.notice.setAttribute("role", "status");
        self.notice.setAttribute("aria-live", "polite");
        self.notice.textContent = "Live: following changes";
        return self.notice;
      }
    });
    new Notice().addTo(this.view.map);
  };

  Follower.prototype.say = function () {
    if (!this.notice) return;
    var n = this.state.since_opened, text;
    if (this.failures) text = "Live updates interrupted; trying again";
    else if (!n) text = "Live: following changes";
    else text = "Live: " + n + (n === 1 ? " change" : " changes") + " since you opened the map";
    if (this.notice.textContent !== text) this.notice.textContent = text;
    this.notice.classList.toggle("geo-live-failing", this.failures > 0);
  };

  window.GeoFollow = {
    start: function (view) { return new Follower(view).start(); }
  };
})();
