// The console's stylesheet and script, embedded (no CDN, no internet; served from /assets/).
#include "pages.hpp"

namespace faceadapt::ui::pages {

const char* const kCss = R"CSS(
:root { --bg:#f4f5f7; --card:#fff; --ink:#1d2330; --muted:#5c6677; --line:#dde1e7; --accent:#1f6feb;
        --ok:#1a7f37; --warn:#9a6700; --bad:#cf222e; }
* { box-sizing:border-box; }
body { margin:0; font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
       background:var(--bg); color:var(--ink); }
header { background:#182030; color:#fff; display:flex; align-items:center; gap:1.5rem; padding:.6rem 1.2rem;
         flex-wrap:wrap; }
header .brand { font-weight:700; letter-spacing:.02em; }
header .brand small { font-weight:400; color:#a9b4c6; margin-left:.4rem; }
header nav { display:flex; gap:.2rem; flex-wrap:wrap; }
header nav a { color:#c9d3e3; text-decoration:none; padding:.35rem .7rem; border-radius:6px; }
header nav a.active, header nav a:hover { background:#2c3a55; color:#fff; }
header .who { margin-left:auto; display:flex; align-items:center; gap:.6rem; color:#a9b4c6; }
header .who form { margin:0; }
main { max-width:1200px; margin:0 auto; padding:1.2rem; }
h1 { font-size:1.35rem; margin:.2rem 0 1rem; }
h2 { font-size:1.05rem; margin:1.4rem 0 .6rem; color:var(--muted); text-transform:uppercase; letter-spacing:.05em; }
.grid { display:grid; grid-template-columns:repeat(auto-fill,minmax(270px,1fr)); gap:1rem; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:1rem; }
.card h3 { margin:0 0 .5rem; font-size:1.05rem; display:flex; align-items:baseline; gap:.5rem; flex-wrap:wrap;
           overflow-wrap:anywhere; }
.card h3 .muted { font-size:.85rem; font-weight:400; }
.snap { width:100%; aspect-ratio:4/3; object-fit:contain; background:#1d2330; border-radius:6px; display:block; }
.nosnap { width:100%; aspect-ratio:4/3; background:#e8ebf0; border-radius:6px; display:flex; align-items:center;
          justify-content:center; color:var(--muted); }
.stats { display:grid; grid-template-columns:1fr 1fr; gap:.2rem .8rem; margin:.6rem 0; font-size:.92rem; }
.stats span { color:var(--muted); }
.stats.tiles { gap:.5rem; }
.stats.tiles div { background:#f6f7f9; border-radius:6px; padding:.35rem .5rem; }
.stats.tiles span { display:block; font-size:.75rem; text-transform:uppercase; letter-spacing:.04em; }
.stats.tiles b { font-size:1.05rem; font-weight:600; white-space:nowrap; }
td.time { white-space:nowrap; }
.group form { margin:0; }
.group .actions { display:flex; gap:.4rem; margin-top:.5rem; flex-wrap:wrap; }
.group .actions button { flex:0 0 auto; }
.group .actions input[type=text], .group .actions select { flex:1 1 8rem; min-width:0; font:inherit; padding:.4rem .5rem;
        border:1px solid var(--line); border-radius:6px; background:#fff; }
.k { color:var(--muted); }
p.status { margin:-.4rem 0 0; color:var(--muted); font-weight:600; }
.crops { display:flex; gap:4px; flex-wrap:wrap; }
.pick { position:relative; display:block; margin:0; font-weight:400; cursor:pointer; line-height:0; }
.pick input { position:absolute; top:3px; left:3px; margin:0; width:16px; height:16px; accent-color:var(--accent); }
.pick input:checked + img { outline:3px solid var(--accent); outline-offset:-3px; }
.merge-pick { display:inline-flex; align-items:center; gap:.25rem; margin:0 0 0 auto; font-size:.8rem; font-weight:600;
        color:var(--muted); cursor:pointer; }
.mergebar { display:flex; align-items:center; gap:.8rem; flex-wrap:wrap; margin:0 0 1rem; padding:.6rem .9rem;
        background:var(--card); border:1px solid var(--line); border-radius:10px; }
.mergebar span { color:var(--muted); }
.crops img, .photos img { width:56px; height:56px; border-radius:4px; object-fit:cover; background:#e8ebf0; }
.badge { font-size:.75rem; padding:.1rem .5rem; border-radius:999px; background:#e8ebf0; color:var(--muted);
         font-weight:600; text-transform:uppercase; letter-spacing:.03em; }
.badge.ok { background:#dafbe1; color:var(--ok); } .badge.warn { background:#fff8c5; color:var(--warn); }
.badge.bad { background:#ffebe9; color:var(--bad); }
table { width:100%; border-collapse:collapse; background:var(--card); border:1px solid var(--line); border-radius:10px;
        overflow:hidden; }
th, td { text-align:left; padding:.5rem .7rem; border-bottom:1px solid var(--line); vertical-align:top; font-size:.93rem; }
th { background:#f0f2f5; color:var(--muted); font-weight:600; }
tr:last-child td { border-bottom:0; }
.muted { color:var(--muted); }
.small { font-size:.85rem; }
td form.inline button { white-space:nowrap; }
progress { width:100%; height:10px; accent-color:var(--accent); }
form.inline { display:inline; margin:0; }
input[type=text], input[type=password], input[type=file] { font:inherit; padding:.45rem .6rem; border:1px solid var(--line);
        border-radius:6px; background:#fff; width:100%; }
label { display:block; font-weight:600; margin:.6rem 0 .25rem; }
button { font:inherit; padding:.45rem 1rem; border-radius:6px; border:1px solid var(--accent); background:var(--accent);
         color:#fff; cursor:pointer; }
button.secondary { background:#fff; color:var(--ink); border-color:var(--line); }
button.danger { background:#fff; color:var(--bad); border-color:#f0b4b8; }
button:hover { filter:brightness(.95); }
.flash { padding:.7rem 1rem; border-radius:8px; margin-bottom:1rem; background:#ddf4ff; border:1px solid #b6e3ff; }
.flash.bad { background:#ffebe9; border-color:#ffc1bc; }
ul.results { margin:.4rem 0 0; padding-left:1.2rem; }
ul.results li.bad { color:var(--bad); } ul.results li.ok { color:var(--ok); }
.login { max-width:360px; margin:8vh auto; }
.login h1 { text-align:center; }
.person { display:flex; gap:1rem; align-items:center; justify-content:space-between; flex-wrap:wrap; }
.person .photos { display:flex; gap:6px; flex-wrap:wrap; }
.person figure { margin:0; display:flex; flex-direction:column; align-items:center; }
.person figure form { margin:0; }
button.link { background:none; border:0; color:var(--muted); padding:0 .2rem; font-size:.75rem; text-decoration:underline; }
.row { display:flex; gap:1rem; flex-wrap:wrap; margin-top:1rem; }
.row > .card { flex:1 1 300px; }
code, pre { font-family:ui-monospace,"DejaVu Sans Mono",monospace; font-size:.85rem; }
pre { white-space:pre-wrap; word-break:break-word; margin:0; }
@media (max-width:900px) { header { gap:.6rem; padding:.5rem .8rem; } header nav a { padding:.35rem .5rem; } }
@media (max-width:700px) { main { padding:.7rem; } .stats { grid-template-columns:1fr; } }
)CSS";

// Live overview (polls the server-rendered, escaped fragment) and confirmation of dangerous
// forms (CSP forbids inline handlers, so both are attached here).
const char* const kJs = R"JS(
(function () {
  document.addEventListener('submit', function (e) {
    var msg = e.target.getAttribute('data-confirm');
    if (msg && !window.confirm(msg)) e.preventDefault();
  });
  var live = document.getElementById('live');
  if (!live) return;
  var every = parseInt(live.getAttribute('data-refresh') || '3000', 10);
  function tick() {
    fetch('/fragment/overview', {credentials: 'same-origin', cache: 'no-store'}).then(function (r) {
      if (r.status === 401) { window.location = '/login'; return null; }
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (html !== null && html !== undefined) live.innerHTML = html;
    }).catch(function () {}).then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
)JS";

}  // namespace faceadapt::ui::pages
