/* pageview-ingest tracker (docs: edge-worker/README.md). Usage:
<script defer src="https://EDGE/script.js" data-site="example.com"></script>
pv('signup', {plan: 'pro'}) sends a custom event. */
(function (w, d, n, l) {
  var s = d.currentScript, site = s && s.getAttribute('data-site');
  if (!site) return;
  var api = (s.getAttribute('data-api') || new URL(s.src).origin).replace(/\/$/, '') + '/e',
    q = (w.pv && w.pv.q) || [], v = {}, last, done;

  function send(name, props, extra) {
    var e = { site: site, url: l.href, name: name, referrer: d.referrer || null,
      screen_width: w.innerWidth, props: {} }, k;
    for (k in props) e.props[k] = String(props[k]);
    for (k in extra) e[k] = extra[k];
    e = JSON.stringify(e);
    // text/plain: a "simple" cross-origin request, no CORS preflight.
    if (!(n.sendBeacon && n.sendBeacon(api, e)))
      fetch(api, { method: 'POST', body: e, keepalive: true }).catch(function () {});
  }

  function page() {
    var u = l.href.split('#')[0];
    if (u != last) { last = u; send('pageview'); }
  }

  function po(type, f) {
    try {
      new PerformanceObserver(function (x) { x.getEntries().forEach(f); })
        .observe({ type: type, buffered: true, durationThreshold: 40 });
    } catch (e) {}
  }
  po('paint', function (e) { if (e.name == 'first-contentful-paint') v.fcp_ms = e.startTime; });
  po('largest-contentful-paint', function (e) { v.lcp_ms = e.startTime; });
  po('layout-shift', function (e) { if (!e.hadRecentInput) v.cls = (v.cls || 0) + e.value; });
  po('event', function (e) { if (e.interactionId && !(v.inp_ms >= e.duration)) v.inp_ms = e.duration; });

  // Web vitals are final when the page is hidden: send them once, then never again.
  function vitals(e) {
    if (done || (e.type != 'pagehide' && d.visibilityState != 'hidden')) return;
    done = 1;
    var t = performance.getEntriesByType('navigation')[0], k;
    if (t) { v.ttfb_ms = t.responseStart; if (t.loadEventEnd) v.load_ms = t.loadEventEnd; }
    for (k in v) if (k != 'cls') v[k] = Math.round(v[k]);
    send('web-vitals', 0, v);
  }
  d.addEventListener('visibilitychange', vitals);
  w.addEventListener('pagehide', vitals);

  var push = history.pushState;
  if (push) {
    history.pushState = function () { push.apply(this, arguments); page(); };
    w.addEventListener('popstate', page);
  }
  w.pv = function (name, props) { send(name, props); };
  page();
  q.forEach(function (a) { w.pv.apply(w, a); });
})(window, document, navigator, location);
