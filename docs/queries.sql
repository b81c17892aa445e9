-- ClickHouse queries behind an analytics dashboard, over the schema-v1 table
-- `analytics.events` (one row per event; columns in shared DESIGN.md "The event row").
--
-- Conventions
-- * Each query starts with a marker line `-- name: <snake_case>`; the test
--   `sink-clickhouse/tests/it/cluster.rs` splits this file on those lines and runs every
--   query on ClickHouse 18.16 (Debian, a 3-node cluster through the Distributed table)
--   and on ClickHouse 26.9 (chdb), so only the common subset of SQL is used here: no
--   query parameters ({x:Type} is 19.x+), no toStartOfInterval, arrayZip, WITH FILL,
--   window functions or Map.
-- * The application substitutes the site (`'example.com'`) and the period
--   (`INTERVAL 30 DAY`); time buckets are in UTC (the `'UTC'` argument).
-- * `visitor_id` is a daily-salted hash: uniq(visitor_id) over several days counts a
--   returning visitor once per day, as Plausible does.
-- * On a cluster point these at the Distributed table (`events`), never at a local one:
--   aggregates (uniq, quantiles) merge their states across shards.

-- name: visitors_pageviews_daily
SELECT
    toDate(received_at, 'UTC') AS day,
    uniq(visitor_id) AS visitors,
    countIf(name = 'pageview') AS pageviews
FROM analytics.events
WHERE site_id = 'example.com' AND received_at >= now() - INTERVAL 30 DAY
GROUP BY day
ORDER BY day;

-- name: visitors_pageviews_hourly
SELECT
    toStartOfHour(received_at, 'UTC') AS hour,
    uniq(visitor_id) AS visitors,
    countIf(name = 'pageview') AS pageviews
FROM analytics.events
WHERE site_id = 'example.com' AND received_at >= now() - INTERVAL 2 DAY
GROUP BY hour
ORDER BY hour;

-- name: current_visitors
SELECT uniq(visitor_id) AS current_visitors
FROM analytics.events
WHERE site_id = 'example.com' AND received_at >= now() - INTERVAL 5 MINUTE;

-- name: summary
-- Top-line numbers; a "bounce" is a visitor-day with exactly one page view (there is no
-- session id in schema v1, so a visitor-day stands in for a visit).
SELECT
    count() AS visits,
    sum(pv) AS pageviews,
    round(sum(pv) / count(), 2) AS views_per_visit,
    round(100 * countIf(pv = 1) / count(), 1) AS bounce_rate_pct,
    round(avg(engaged_ms) / 1000, 1) AS avg_engaged_seconds
FROM
(
    SELECT
        visitor_id,
        toDate(received_at, 'UTC') AS day,
        countIf(name = 'pageview') AS pv,
        sumIf(engagement_ms, name = 'engagement') AS engaged_ms
    FROM analytics.events
    WHERE site_id = 'example.com' AND received_at >= now() - INTERVAL 30 DAY
    GROUP BY visitor_id, day
    HAVING pv > 0
);

-- name: top_pages
SELECT
    pathname,
    uniq(visitor_id) AS visitors,
    countIf(name = 'pageview') AS pageviews,
    round(avgIf(scroll_depth, name = 'engagement'), 0) AS avg_scroll_pct,
    round(avgIf(engagement_ms, name = 'engagement') / 1000, 1) AS avg_engaged_seconds
FROM analytics.events
WHERE site_id = 'example.com' AND received_at >= now() - INTERVAL 30 DAY
GROUP BY pathname
ORDER BY pageviews DESC, pathname
LIMIT 20;

-- name: entry_pages
-- The first page of each visitor-day.
SELECT entry_page, count() AS visits
FROM
(
    SELECT visitor_id, toDate(received_at, 'UTC') AS day, argMin(pathname, received_at) AS entry_page
    FROM analytics.events
    WHERE site_id = 'example.com' AND name = 'pageview' AND received_at >= now() - INTERVAL 30 DAY
    GROUP BY visitor_id, day
)
GROUP BY entry_page
ORDER BY visits DESC, entry_page
LIMIT 20;

-- name: exit_pages
SELECT exit_page, count() AS visits
FROM
(
    SELECT visitor_id, toDate(received_at, 'UTC') AS day, argMax(pathname, received_at) AS exit_page
    FROM analytics.events
    WHERE site_id = 'example.com' AND name = 'pageview' AND received_at >= now() - INTERVAL 30 DAY
    GROUP BY visitor_id, day
)
GROUP BY exit_page
ORDER BY visits DESC, exit_page
LIMIT 20;

-- name: referrer_sources
SELECT
    if(referrer_source = '', 'Direct / None', referrer_source) AS source,
    uniq(visitor_id) AS visitors,
    count() AS pageviews
FROM analytics.events
WHERE site_id = 'example.com' AND name = 'pageview' AND received_at >= now() - INTERVAL 30 DAY
GROUP BY source
ORDER BY visitors DESC, source
LIMIT 20;

-- name: referrer_hosts
SELECT referrer_host, uniq(visitor_id) AS visitors, count() AS pageviews
FROM analytics.events
WHERE site_id = 'example.com' AND name = 'pageview' AND referrer_host != ''
  AND received_at >= now() - INTERVAL 30 DAY
GROUP BY referrer_host
ORDER BY visitors DESC, referrer_host
LIMIT 20;

-- name: utm_campaigns
SELECT utm_source, utm_medium, utm_campaign, uniq(visitor_id) AS visitors, count() AS pageviews
FROM analytics.events
WHERE site_id = 'example.com' AND name = 'pageview' AND utm_campaign != ''
  AND received_at >= now() - INTERVAL 30 DAY
GROUP BY utm_source, utm_medium, utm_campaign
ORDER BY visitors DESC, utm_campaign
LIMIT 50;

-- name: countries
SELECT
    if(country = '', 'unknown', country) AS country_code,
    uniq(visitor_id) AS visitors,
    round(100 * uniq(visitor_id) / (
        SELECT uniq(visitor_id) FROM analytics.events
        WHERE site_id = 'example.com' AND received_at >= now() - INTERVAL 30 DAY
    ), 1) AS share_pct
FROM analytics.events
WHERE site_id = 'example.com' AND received_at >= now() - INTERVAL 30 DAY
GROUP BY country_code
ORDER BY visitors DESC, country_code
LIMIT 50;

-- name: regions_cities
SELECT country, region, city, uniq(visitor_id) AS visitors
FROM analytics.events
WHERE site_id = 'example.com' AND city != '' AND received_at >= now() - INTERVAL 30 DAY
GROUP BY country, region, city
ORDER BY visitors DESC, city
LIMIT 50;

-- name: devices
SELECT if(device = '', 'unknown', device) AS device_class, uniq(visitor_id) AS visitors
FROM analytics.events
WHERE site_id = 'example.com' AND received_at >= now() - INTERVAL 30 DAY
GROUP BY device_class
ORDER BY visitors DESC, device_class;

-- name: browsers
SELECT browser, browser_version, uniq(visitor_id) AS visitors
FROM analytics.events
WHERE site_id = 'example.com' AND received_at >= now() - INTERVAL 30 DAY
GROUP BY browser, browser_version
ORDER BY visitors DESC, browser, browser_version
LIMIT 30;

-- name: operating_systems
SELECT os, os_version, uniq(visitor_id) AS visitors
FROM analytics.events
WHERE site_id = 'example.com' AND received_at >= now() - INTERVAL 30 DAY
GROUP BY os, os_version
ORDER BY visitors DESC, os, os_version
LIMIT 30;

-- name: screen_widths
SELECT
    multiIf(screen_width = 0, 'unknown', screen_width < 576, '< 576', screen_width < 992, '576-991',
            screen_width < 1440, '992-1439', '>= 1440') AS width_class,
    uniq(visitor_id) AS visitors
FROM analytics.events
WHERE site_id = 'example.com' AND name = 'pageview' AND received_at >= now() - INTERVAL 30 DAY
GROUP BY width_class
ORDER BY visitors DESC, width_class;

-- name: web_vitals
-- Percentiles p50/p75/p90/p99; NULL timings (not reported) are skipped by quantiles.
-- Google's thresholds apply to p75: LCP 2500 ms, INP 200 ms, CLS 0.1.
SELECT
    quantiles(0.5, 0.75, 0.9, 0.99)(ttfb_ms) AS ttfb_ms_q,
    quantiles(0.5, 0.75, 0.9, 0.99)(fcp_ms) AS fcp_ms_q,
    quantiles(0.5, 0.75, 0.9, 0.99)(lcp_ms) AS lcp_ms_q,
    quantiles(0.5, 0.75, 0.9, 0.99)(inp_ms) AS inp_ms_q,
    quantiles(0.5, 0.75, 0.9, 0.99)(cls) AS cls_q,
    quantiles(0.5, 0.75, 0.9, 0.99)(load_ms) AS load_ms_q,
    count(lcp_ms) AS lcp_samples
FROM analytics.events
WHERE site_id = 'example.com' AND received_at >= now() - INTERVAL 30 DAY;

-- name: web_vitals_by_page
SELECT
    pathname,
    quantile(0.75)(lcp_ms) AS lcp_p75_ms,
    quantile(0.75)(inp_ms) AS inp_p75_ms,
    quantile(0.75)(cls) AS cls_p75,
    round(100 * countIf(lcp_ms <= 2500) / count(lcp_ms), 1) AS lcp_good_pct,
    count(lcp_ms) AS samples
FROM analytics.events
WHERE site_id = 'example.com' AND lcp_ms IS NOT NULL AND received_at >= now() - INTERVAL 30 DAY
GROUP BY pathname
ORDER BY samples DESC, pathname
LIMIT 20;

-- name: web_vitals_daily
SELECT
    toDate(received_at, 'UTC') AS day,
    quantile(0.75)(lcp_ms) AS lcp_p75_ms,
    quantile(0.75)(inp_ms) AS inp_p75_ms,
    quantile(0.75)(cls) AS cls_p75
FROM analytics.events
WHERE site_id = 'example.com' AND received_at >= now() - INTERVAL 30 DAY
GROUP BY day
ORDER BY day;

-- name: engagement
-- From the tracker's engagement events (sent when a page is left or hidden).
SELECT
    quantiles(0.5, 0.9)(engagement_ms) AS engaged_ms_q,
    quantiles(0.5, 0.9)(scroll_depth) AS scroll_pct_q,
    round(100 * countIf(scroll_depth >= 75) / count(scroll_depth), 1) AS read_to_75_pct
FROM analytics.events
WHERE site_id = 'example.com' AND name = 'engagement' AND received_at >= now() - INTERVAL 30 DAY;

-- name: custom_events
SELECT name, uniq(visitor_id) AS visitors, count() AS events
FROM analytics.events
WHERE site_id = 'example.com' AND name NOT IN ('pageview', 'engagement')
  AND received_at >= now() - INTERVAL 30 DAY
GROUP BY name
ORDER BY events DESC, name
LIMIT 50;

-- name: custom_event_props
-- Every (property, value) pair of custom events, from the parallel arrays.
SELECT name, prop_key, prop_value, uniq(visitor_id) AS visitors, count() AS events
FROM analytics.events
ARRAY JOIN prop_keys AS prop_key, prop_values AS prop_value
WHERE site_id = 'example.com' AND name NOT IN ('pageview', 'engagement')
  AND received_at >= now() - INTERVAL 30 DAY
GROUP BY name, prop_key, prop_value
ORDER BY events DESC, name, prop_key, prop_value
LIMIT 100;

-- name: custom_event_prop_breakdown
-- One property of one event, looked up by key (a missing key gives '').
SELECT
    prop_values[indexOf(prop_keys, 'plan')] AS plan,
    uniq(visitor_id) AS visitors,
    count() AS events
FROM analytics.events
WHERE site_id = 'example.com' AND name = 'Signup' AND has(prop_keys, 'plan')
  AND received_at >= now() - INTERVAL 30 DAY
GROUP BY plan
ORDER BY events DESC, plan;

-- name: goal_conversion
SELECT
    uniq(visitor_id) AS visitors,
    uniqIf(visitor_id, name = 'Signup') AS converted,
    round(100 * uniqIf(visitor_id, name = 'Signup') / uniq(visitor_id), 2) AS conversion_pct
FROM analytics.events
WHERE site_id = 'example.com' AND received_at >= now() - INTERVAL 30 DAY;

-- name: sites_overview
-- Operator view: events per site today (quota and abuse checks).
SELECT site_id, count() AS events, uniq(visitor_id) AS visitors, max(received_at) AS last_event
FROM analytics.events
WHERE received_at >= toStartOfDay(now(), 'UTC')
GROUP BY site_id
ORDER BY events DESC, site_id
LIMIT 100;
