// The dashboard: connection and message rates from /metrics (public), a
// chart of messages per second, and rooms with who is present from the
// admin API (the key is kept in this tab's sessionStorage only).
const $ = (id) => document.getElementById(id);
const history = []; // {t, in, out}
let last = null;

function parse(text) {
  const sum = (name, filter = '') => {
    let total = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith(name) && line.includes(filter) && !line.startsWith('#')) {
        total += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
      }
    }
    return total;
  };
  return {
    t: performance.now(),
    connections: sum('switchboard_connections{'),
    in: sum('switchboard_messages_received_total'),
    out: sum('switchboard_messages_sent_total'),
    publishes: sum('switchboard_publishes_total'),
  };
}

async function tick() {
  try {
    const now = parse(await (await fetch('/metrics')).text());
    $('connections').textContent = now.connections;
    if (last) {
      const dt = (now.t - last.t) / 1000;
      const rate = (a, b) => Math.max(0, (a - b) / dt);
      const point = { in: rate(now.in, last.in), out: rate(now.out, last.out) };
      $('in-rate').textContent = point.in.toFixed(1);
      $('out-rate').textContent = point.out.toFixed(1);
      $('publish-rate').textContent = rate(now.publishes, last.publishes).toFixed(1);
      history.push(point);
      if (history.length > 120) history.shift();
      draw();
    }
    last = now;
  } catch {
    $('connections').textContent = '?';
  }
}

function draw() {
  const c = $('chart');
  const g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  const max = Math.max(1, ...history.map((p) => Math.max(p.in, p.out)));
  const line = (key, color) => {
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    history.forEach((p, i) => {
      const x = (i / 119) * (c.width - 10) + 5;
      const y = c.height - 5 - (p[key] / max) * (c.height - 20);
      if (i === 0) g.moveTo(x, y);
      else g.lineTo(x, y);
    });
    g.stroke();
  };
  line('in', '#2a7');
  line('out', '#27c');
  g.fillStyle = '#555';
  g.fillText(`max ${max.toFixed(1)} msg/s — green: in, blue: out`, 8, 14);
}

async function admin(path) {
  const key = sessionStorage.getItem('sb-admin-key');
  if (!key) return null;
  const res = await fetch(`/api/v1/${path}`, { headers: { authorization: `Bearer ${key}` } });
  if (!res.ok) throw new Error(`${res.status}`);
  return res.json();
}

async function rooms() {
  try {
    const list = await admin('rooms');
    if (!list) return;
    const rows = await Promise.all(
      list.map(async (r) => {
        const present = await admin(`presence/${encodeURIComponent(r.room)}`);
        const tr = document.createElement('tr');
        for (const v of [r.room, r.users, r.connections, r.offset, present.map((p) => p.user).join(', ')]) {
          const td = document.createElement('td');
          td.textContent = v;
          tr.append(td);
        }
        return tr;
      }),
    );
    $('rooms').replaceChildren(...rows);
  } catch (e) {
    $('rooms').replaceChildren(Object.assign(document.createElement('tr'), { textContent: `admin API: ${e.message}` }));
  }
}

$('key-form').onsubmit = (e) => {
  e.preventDefault();
  sessionStorage.setItem('sb-admin-key', $('key-input').value);
  $('key-input').value = '';
  rooms();
};

tick();
rooms();
setInterval(tick, 1000);
setInterval(rooms, 3000);
