// The demo chat: rooms, messages with history on join, presence with
// online/offline and last seen, and a banner that shows the connection's
// state (attempt count and next retry while reconnecting). Everything goes
// through the native protocol client served at /switchboard.js.
import { Switchboard } from '/switchboard.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
const sb = Switchboard.shared({
  urls: [`${scheme}://${location.host}/ws`],
  token: params.get('token') || undefined,
});

let current = null; // the room shown
const rooms = new Map(); // room -> { messages: [], people: Map(user -> {online, since, lastSeen}) }
const name = localStorage.getItem('sb-name') || `guest-${Math.floor(Math.random() * 1000)}`;
$('name-input').value = name;

// --- the connection banner ------------------------------------------------
let countdown = null;
sb.on('state', (s) => {
  const banner = $('banner');
  banner.dataset.state = s.state;
  clearInterval(countdown);
  if (s.state === 'open') {
    banner.textContent = `connected as ${sb.user}`;
    $('me').textContent = `you are ${sb.user} (socket ${sb.socket})`;
  } else if (s.state === 'reconnecting') {
    const until = Date.now() + (s.delay || 0);
    const show = () => {
      const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      banner.textContent = `reconnecting — attempt ${s.attempt}, next try in ${left} s`;
    };
    show();
    countdown = setInterval(show, 250);
  } else if (s.state === 'connecting') {
    banner.textContent = 'connecting…';
  } else if (s.state === 'closed') {
    banner.textContent = `disconnected: ${s.reason || 'closed'}`;
  }
});

// --- rooms ----------------------------------------------------------------
function roomState(room) {
  if (!rooms.has(room)) rooms.set(room, { messages: [], people: new Map() });
  return rooms.get(room);
}

async function join(room) {
  const r = roomState(room);
  await sb.join(room, { presence: true });
  if (r.messages.length === 0) {
    const h = await sb.history(room, { limit: 50 });
    for (const m of h.messages) addMessage({ ...m, room, epoch: h.epoch });
  }
  const p = await sb.presence(room);
  for (const m of p.members) {
    r.people.set(m.user, { online: true, since: m.since, lastSeen: null });
  }
  show(room);
}

function show(room) {
  current = room;
  renderRooms();
  renderMessages();
  renderPresence();
}

function renderRooms() {
  const ul = $('rooms');
  ul.replaceChildren(
    ...[...rooms.keys()].map((room) => {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.textContent = `# ${room}`;
      b.className = room === current ? 'current' : '';
      b.onclick = () => show(room);
      li.append(b);
      return li;
    }),
  );
}

function addMessage(m) {
  const r = roomState(m.room);
  if (r.messages.some((x) => x.epoch === m.epoch && x.offset === m.offset)) return;
  r.messages.push(m);
  if (m.room === current) renderMessages();
}

function renderMessages() {
  const ol = $('messages');
  const r = current && rooms.get(current);
  ol.replaceChildren(
    ...(r ? r.messages : []).map((m) => {
      const li = document.createElement('li');
      li.dataset.offset = m.offset;
      const who = document.createElement('b');
      who.textContent = (m.data && m.data.name) || m.from || 'server';
      const text = document.createElement('span');
      text.textContent = typeof m.data === 'object' && m.data ? m.data.text : String(m.data);
      li.append(who, ' ', text);
      return li;
    }),
  );
  ol.scrollTop = ol.scrollHeight;
}

function renderPresence() {
  const ul = $('presence');
  const r = current && rooms.get(current);
  ul.replaceChildren(
    ...(r ? [...r.people.entries()] : []).map(([user, p]) => {
      const li = document.createElement('li');
      li.className = p.online ? 'online' : 'offline';
      li.textContent = p.online
        ? `● ${user}${user === sb.user ? ' (you)' : ''}`
        : `○ ${user} — last seen ${new Date(p.lastSeen).toLocaleTimeString()}`;
      return li;
    }),
  );
}

sb.on('message', (m) => addMessage(m));
sb.on('gap', async ({ room }) => {
  // Messages were lost while away: refetch what the server still has.
  const h = await sb.history(room, { limit: 50 });
  for (const m of h.messages) addMessage({ ...m, room, epoch: h.epoch });
});
sb.on('presence', ({ room, user, action }) => {
  const r = roomState(room);
  if (action === 'join') r.people.set(user, { online: true, since: Date.now(), lastSeen: null });
  else r.people.set(user, { online: false, lastSeen: Date.now() });
  if (room === current) renderPresence();
});

$('join-form').onsubmit = (e) => {
  e.preventDefault();
  join($('room-input').value.trim()).catch((err) => alert(err.message));
};
$('send-form').onsubmit = (e) => {
  e.preventDefault();
  if (!current) return;
  const text = $('text-input').value;
  const who = $('name-input').value.trim() || name;
  localStorage.setItem('sb-name', who);
  $('text-input').value = '';
  sb.publish(current, 'chat', { name: who, text }).catch((err) => {
    $('banner').textContent = `not sent: ${err.message}`;
  });
};

sb.connect();
join(params.get('room') || 'lobby').catch((err) => console.error(err));
