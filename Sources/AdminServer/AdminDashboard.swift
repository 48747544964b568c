/// The page `GET /` serves: one self-contained HTML file (inline CSS and JavaScript, no external assets)
/// that renders shards, replicas with lag and rotation, slot ownership, pools and traffic from `/status`
/// and `/lag`, refreshing itself every second. Everything from the proxy is inserted as text, never as
/// HTML.
enum AdminDashboard {
    static let html = #"""
    <!DOCTYPE html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>ShardGate</title>
    <style>
      :root { --fg: #1d2330; --muted: #6b7385; --line: #dfe3ea; --ok: #1f9d55; --bad: #d64545; --warn: #d69e2e; }
      * { box-sizing: border-box; }
      body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #f6f7f9; }
      header { display: flex; gap: 24px; align-items: baseline; padding: 14px 24px; background: #fff; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
      header h1 { font-size: 18px; margin: 0 12px 0 0; }
      .stat b { font-size: 18px; } .stat span { color: var(--muted); margin-left: 4px; }
      main { padding: 16px 24px; display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); }
      section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
      section.wide { grid-column: 1 / -1; }
      h2 { font-size: 14px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin: 0 0 8px; }
      table { border-collapse: collapse; width: 100%; }
      th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
      th { color: var(--muted); font-weight: 600; }
      td.num { text-align: right; font-variant-numeric: tabular-nums; }
      td.url { font-family: ui-monospace, monospace; font-size: 12px; white-space: normal; word-break: break-all; }
      .yes { color: var(--ok); font-weight: 600; } .no { color: var(--bad); font-weight: 600; }
      .reason { color: var(--muted); font-size: 12px; white-space: normal; }
      #strip { display: grid; gap: 1px; margin-top: 6px; }
      #strip div { height: 12px; }
      #strip div.paused { background-image: repeating-linear-gradient(45deg, rgba(0,0,0,.55) 0 2px, transparent 2px 4px); }
      #legend span { display: inline-block; margin-right: 14px; }
      #legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; vertical-align: -1px; }
      #error { color: var(--bad); font-weight: 600; }
      canvas { width: 100%; height: 80px; }
    </style>
    </head>
    <body>
    <header>
      <h1>ShardGate</h1>
      <div class="stat"><b id="map-version">–</b><span>map version</span></div>
      <div class="stat"><b id="clients">–</b><span>clients</span></div>
      <div class="stat"><b id="qps">–</b><span>queries/s</span></div>
      <div class="stat"><b id="eps">–</b><span>errors/s</span></div>
      <div class="stat"><b id="paused">–</b><span>paused slots</span></div>
      <div class="stat"><span id="sampled">not sampled yet</span></div>
      <div id="error"></div>
    </header>
    <main>
      <section>
        <h2>Shards</h2>
        <table id="shards"><thead><tr><th>shard</th><th>primary</th><th>healthy</th><th>WAL LSN</th><th>slots</th></tr></thead><tbody></tbody></table>
      </section>
      <section>
        <h2>Replicas</h2>
        <table id="replicas"><thead><tr><th>shard</th><th>replica</th><th>healthy</th><th>in rotation</th><th>replay LSN</th><th>lag bytes</th><th>lag ms</th></tr></thead><tbody></tbody></table>
      </section>
      <section class="wide">
        <h2>Slot ownership <span class="reason">(hatched: paused)</span></h2>
        <div id="legend"></div>
        <div id="strip"></div>
      </section>
      <section>
        <h2>Pools</h2>
        <table id="pools"><thead><tr><th>shard</th><th>role</th><th>server</th><th>size</th><th>busy</th><th>idle</th><th>waiting</th></tr></thead><tbody></tbody></table>
      </section>
      <section>
        <h2>Traffic</h2>
        <canvas id="traffic" width="600" height="80"></canvas>
        <table id="routes"><thead><tr><th>route</th><th>queries</th></tr></thead><tbody></tbody></table>
      </section>
    </main>
    <script>
    "use strict";
    const palette = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac"];
    const $ = (id) => document.getElementById(id);
    const rates = [];
    let previous = null;
    let stripSize = 0;

    function cell(row, value, cls) {
      const td = document.createElement("td");
      td.textContent = value === null || value === undefined ? "–" : String(value);
      if (cls) td.className = cls;
      row.appendChild(td);
      return td;
    }
    function flag(row, value) { return cell(row, value ? "yes" : "no", value ? "yes" : "no"); }
    function fill(id, items, build) {
      const body = $(id).tBodies[0];
      const rows = items.map((item) => { const tr = document.createElement("tr"); build(tr, item); return tr; });
      body.replaceChildren(...rows);
    }
    function ranges(text, slotCount) {
      const slots = [];
      for (const part of (text || "").split(",")) {
        const item = part.trim();
        if (!item) continue;
        const [a, b] = item.split("-").map(Number);
        for (let s = a; s <= (b === undefined ? a : b) && s < slotCount; s++) slots.push(s);
      }
      return slots;
    }

    function renderStrip(status) {
      const strip = $("strip");
      const count = status.slot_count;
      if (stripSize !== count) {
        const columns = Math.min(64, count);
        strip.style.gridTemplateColumns = "repeat(" + columns + ", 1fr)";
        strip.replaceChildren(...Array.from({ length: count }, () => document.createElement("div")));
        stripSize = count;
      }
      const owner = new Array(count).fill(-1);
      status.shards.forEach((shard, index) => { for (const s of ranges(shard.slots, count)) owner[s] = index; });
      const paused = new Set(ranges(status.paused_slots, count));
      const cells = strip.children;
      for (let s = 0; s < count; s++) {
        const index = owner[s];
        const name = index >= 0 ? status.shards[index].name : "unowned";
        cells[s].style.backgroundColor = index >= 0 ? palette[index % palette.length] : "#ccc";
        cells[s].className = paused.has(s) ? "paused" : "";
        cells[s].title = "slot " + s + ": " + name + (paused.has(s) ? " (paused)" : "");
      }
      const legend = status.shards.map((shard, index) => {
        const span = document.createElement("span");
        const swatch = document.createElement("i");
        swatch.style.background = palette[index % palette.length];
        span.append(swatch, shard.name + " (" + shard.slot_count + ")");
        return span;
      });
      $("legend").replaceChildren(...legend);
    }

    function renderTraffic(status) {
      const now = Date.now();
      const total = status.counters.queries_total;
      const errors = status.counters.errors;
      if (previous && now > previous.time) {
        const seconds = (now - previous.time) / 1000;
        const qps = Math.max(0, (total - previous.total) / seconds);
        $("qps").textContent = qps.toFixed(qps < 10 ? 1 : 0);
        $("eps").textContent = Math.max(0, (errors - previous.errors) / seconds).toFixed(1);
        rates.push(qps);
        if (rates.length > 60) rates.shift();
      }
      previous = { time: now, total: total, errors: errors };
      const canvas = $("traffic");
      const g = canvas.getContext("2d");
      g.clearRect(0, 0, canvas.width, canvas.height);
      const max = Math.max(1, ...rates);
      g.strokeStyle = palette[0];
      g.lineWidth = 2;
      g.beginPath();
      rates.forEach((rate, i) => {
        const x = (i / 59) * (canvas.width - 4) + 2;
        const y = canvas.height - 4 - (rate / max) * (canvas.height - 8);
        if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
      });
      g.stroke();
      g.fillStyle = "#6b7385";
      g.fillText("max " + max.toFixed(0) + "/s over the last minute", 6, 12);
      fill("routes", Object.keys(status.counters.queries).sort(), (tr, route) => {
        cell(tr, route);
        cell(tr, status.counters.queries[route], "num");
      });
    }

    function render(status, lag) {
      $("map-version").textContent = status.map_version;
      $("clients").textContent = status.clients;
      $("paused").textContent = status.paused_slot_count;
      $("sampled").textContent = lag.sampled_at ? "lag sampled at " + lag.sampled_at : "lag not sampled yet";
      const primaries = new Map(lag.primaries.map((p) => [p.shard, p]));
      fill("shards", status.shards, (tr, shard) => {
        const primary = primaries.get(shard.name) || {};
        cell(tr, shard.name);
        cell(tr, shard.primary, "url");
        flag(tr, primary.healthy);
        cell(tr, primary.wal_lsn);
        cell(tr, shard.slot_count + " (" + (shard.slots || "none") + ")");
      });
      const reasons = new Map((status.replicas || []).map((r) => [r.shard + " " + r.url, r.reason]));
      fill("replicas", lag.replicas, (tr, replica) => {
        cell(tr, replica.shard);
        const url = cell(tr, replica.url, "url");
        const reason = reasons.get(replica.shard + " " + replica.url);
        if (reason) {
          const note = document.createElement("div");
          note.className = "reason";
          note.textContent = reason;
          url.appendChild(note);
        }
        flag(tr, replica.healthy);
        flag(tr, replica.in_rotation);
        cell(tr, replica.replay_lsn);
        cell(tr, replica.lag_bytes, "num");
        cell(tr, replica.lag_ms, "num");
      });
      fill("pools", status.pools, (tr, pool) => {
        cell(tr, pool.shard);
        cell(tr, pool.role);
        cell(tr, pool.server, "url");
        for (const key of ["size", "busy", "idle", "waiting"]) cell(tr, pool[key], "num");
      });
      renderStrip(status);
      renderTraffic(status);
    }

    async function get(path) {
      const response = await fetch(path, { cache: "no-store" });
      if (!response.ok) throw new Error(path + ": HTTP " + response.status);
      return response.json();
    }

    async function refresh() {
      try {
        const [status, lag] = await Promise.all([get("status"), get("lag")]);
        render(status, lag);
        $("error").textContent = "";
      } catch (error) {
        $("error").textContent = "cannot reach the proxy: " + error.message;
      } finally {
        setTimeout(refresh, 1000);
      }
    }
    refresh();
    </script>
    </body>
    </html>
    """#
}
