/* petrel RUM tag: measures this browser's latency to each POP and tells the
   collector. No third-party code; the settings below come from petrel's
   config. Each POP's beacon object is fetched once; the RTT is the
   Resource Timing of that fetch (the TCP handshake when the connection is
   new, else request to first byte). */
(function (c) {
  if (!window.fetch || !window.performance || Math.random() * 100 >= c.sample) return;
  var id = "";
  for (var i = 0; i < 16; i++) id += "abcdefghijklmnopqrstuvwxyz0123456789".charAt(Math.floor(Math.random() * 36));
  var out = [], left = c.pops.length + (c.whoami ? 1 : 0);
  function send() {
    var body = JSON.stringify({ v: 1, id: id, m: out });
    if (!(navigator.sendBeacon && navigator.sendBeacon(c.collector, body))) {
      fetch(c.collector, { method: "POST", body: body, keepalive: true, credentials: "omit" }).catch(function () {});
    }
  }
  function rtt(url, t0) {
    var e = performance.getEntriesByName(url);
    e = e[e.length - 1];
    if (e && e.connectEnd > e.connectStart && e.connectStart > 0) return e.connectEnd - e.connectStart;
    if (e && e.responseStart > e.requestStart && e.requestStart > 0) return e.responseStart - e.requestStart;
    return performance.now() - t0;
  }
  function one(pop) {
    var url = new URL(c.url.replace("{pop}", pop) + "?r=" + id, location.href).href;
    var t0 = performance.now();
    fetch(url, { mode: "cors", cache: "no-store", credentials: "omit" })
      .then(function (r) { return r.arrayBuffer(); })
      .then(function () {
        var d = rtt(url, t0);
        if (d > 0) out.push({ p: pop, d: Math.round(d * 10) / 10 });
      })
      .catch(function () {})
      .then(done);
  }
  function done() { if (--left === 0 && out.length) send(); }
  if (c.whoami) {
    /* The resolver behind this browser: a name made unique by the id, which
       the DNS side logs; the beacon waits for it so that the join finds it. */
    fetch(c.whoami.replace("{id}", id), { mode: "no-cors", cache: "no-store", credentials: "omit" })
      .catch(function () {})
      .then(done);
  }
  for (var j = 0; j < c.pops.length; j++) one(c.pops[j]);
})(/*CONFIG*/);
