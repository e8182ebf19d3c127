#include "pages.hpp"

#include <cmath>

#include <fmt/format.h>

#include "faceadapt/ui/html.hpp"

using json = nlohmann::json;

namespace faceadapt::ui::pages {
namespace {

std::string e(const std::string& s) { return html_escape(s); }

// A JSON value as text for a table cell (strings unquoted).
std::string text_of(const json& j) {
    if (j.is_string()) return j.get<std::string>();
    if (j.is_null()) return "";
    if (j.is_number_float()) return fmt::format("{:.4g}", j.get<double>());
    return j.dump();
}

std::string str(const json& j, const char* key) {
    return j.is_object() && j.contains(key) ? text_of(j[key]) : std::string();
}

// An ISO-8601 UTC time ("2026-12-01T19:35:04Z") as a <time> element showing "2026-12-01 19:35 UTC",
// short enough not to wrap in a narrow card; anything else shown as it is, escaped.
std::string when(const std::string& iso) {
    const bool utc = iso.size() >= 17 && iso[4] == '-' && iso[7] == '-' && iso[10] == 'T' && iso[13] == ':' && iso.back() == 'Z';
    if (!utc) return e(iso);
    return "<time datetime=\"" + e(iso) + "\">" + e(iso.substr(0, 10)) + " " + e(iso.substr(11, 5)) + " UTC</time>";
}

// {"a": 1, "b": "x"} -> "a 1 · b x" (nested values as compact JSON), escaped. Keys whose value is
// null or "" (e.g. a publish's empty "error") are left out.
std::string details(const json& j) {
    if (!j.is_object()) return e(text_of(j));
    std::string out;
    for (auto it = j.begin(); it != j.end(); ++it) {
        if (it.value().is_null() || (it.value().is_string() && it.value().get_ref<const std::string&>().empty())) continue;
        if (!out.empty()) out += " &middot; ";
        std::string v;
        if (it.value().is_array()) {
            for (const auto& x : it.value()) v += (v.empty() ? "" : ", ") + text_of(x);
            if (v.empty()) v = "none";
        } else {
            v = text_of(it.value());
        }
        out += "<span class=\"k\">" + e(it.key()) + "</span> " + e(v);
    }
    return out;
}

std::string bytes_text(double b) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) { b /= 1024; ++u; }
    return u == 0 ? fmt::format("{:.0f} {}", b, units[u]) : fmt::format("{:.1f} {}", b, units[u]);
}

std::string state_badge(const std::string& state) {
    const char* cls = state == "streaming" || state == "installed" ? "ok"
                      : state == "connecting" || state == "receiving" || state == "idle" ? "warn"
                      : "bad";
    return fmt::format("<span class=\"badge {}\">{}</span>", cls, e(state));
}

std::string csrf_field(const Session& s) {
    return "<input type=\"hidden\" name=\"csrf\" value=\"" + e(s.csrf) + "\">";
}

std::string doors_table(const json& doors) {
    if (!doors.is_array() || doors.empty()) return "<p class=\"muted\">No door has reported yet.</p>";
    std::string h = "<table><tr><th>Door</th><th>Installed version</th><th>State</th><th>Last report</th><th>Note</th></tr>";
    for (const auto& d : doors)
        h += fmt::format("<tr><td>{}</td><td>v{}</td><td>{}</td><td class=\"time\">{}</td><td class=\"muted\">{}</td></tr>",
                         e(str(d, "door")), e(str(d, "installed_version")), state_badge(str(d, "status")),
                         e(str(d, "time")), e(str(d, "error")));
    return h + "</table>";
}

}  // namespace

std::string message(const std::string& title, const std::string& text) {
    return "<h1>" + e(title) + "</h1><p>" + e(text) + "</p>";
}

std::string login(const std::string& site, const std::string& error, const std::string& token) {
    std::string h = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
                    "<title>faceadapt console: log in</title><link rel=\"stylesheet\" href=\"/assets/console.css\">"
                    "</head><body><main class=\"login\"><div class=\"card\"><h1>faceadapt";
    if (!site.empty()) h += " <span class=\"muted\">" + e(site) + "</span>";
    h += "</h1>";
    if (!error.empty()) h += "<div class=\"flash bad\" id=\"login-error\">" + e(error) + "</div>";
    h += "<form method=\"post\" action=\"/login\">"
         "<input type=\"hidden\" name=\"csrf\" value=\"" + e(token) + "\">"
         "<label for=\"user\">User</label><input type=\"text\" id=\"user\" name=\"user\" autocomplete=\"username\" "
         "autofocus required maxlength=\"32\">"
         "<label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" "
         "autocomplete=\"current-password\" required maxlength=\"256\">"
         "<p><button type=\"submit\" id=\"login\">Log in</button></p></form></div></main></body></html>";
    return h;
}

std::string layout(const std::string& site, const std::string& title, const std::string& active,
                   const Session& session, const std::string& body) {
    std::string nav;
    for (const auto& [href, name] : std::vector<std::pair<std::string, std::string>>{
             {"/", "Overview"}, {"/unknown", "Unknown faces"}, {"/people", "People"}, {"/models", "Models"}, {"/audit", "Audit"}})
        nav += fmt::format("<a href=\"{}\"{}>{}</a>", href, name == active ? " class=\"active\"" : "", name);
    return "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
           "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>" +
           e(title) + " - faceadapt</title><link rel=\"stylesheet\" href=\"/assets/console.css\">"
           "<script src=\"/assets/console.js\" defer></script></head><body><header><div class=\"brand\">faceadapt<small>" +
           e(site) + "</small></div><nav>" + nav + "</nav><div class=\"who\"><span id=\"who\">" + e(session.user) +
           " (" + to_string(session.role) + ")</span><form method=\"post\" action=\"/logout\">" + csrf_field(session) +
           "<button class=\"secondary\" id=\"logout\" type=\"submit\">Log out</button></form></div></header><main>" +
           body + "</main></body></html>";
}

std::string overview_live(const json& o) {
    std::string h = "<p class=\"status\" id=\"status\">" + e(str(o, "status")) + "</p><h2>Cameras</h2>";
    const json cams = o.value("cameras", json::array());
    if (cams.empty()) h += "<p class=\"muted\">No camera is configured.</p>";
    h += "<div class=\"grid\">";
    for (const auto& c : cams) {
        const std::string id = str(c, "id");
        h += "<div class=\"card camera\" data-camera=\"" + e(id) + "\"><h3>" + e(id) + " " +
             state_badge(str(c, "state")) + "</h3>";
        const json crops = c.value("latest_crops", json::array());
        const std::string snapshot = str(c, "snapshot");  // the latest full frame's time
        if (!snapshot.empty())
            h += "<img class=\"snap\" alt=\"recent picture of " + e(id) + "\" title=\"" + e(snapshot) +
                 "\" src=\"/api/cameras/" + url_encode(id) + "/snapshot.jpg?t=" + url_encode(snapshot) + "\">";
        else
            h += "<div class=\"nosnap\">no picture yet</div>";
        h += fmt::format("<div class=\"stats tiles\"><div><span>frame rate</span><b>{:.1f} fps</b></div>"
                         "<div><span>faces</span><b>{:.1f}/min</b></div><div><span>reconnects</span><b>{}</b></div>"
                         "<div><span>faults</span><b>{}</b></div></div>",
                         c.value("fps", 0.0), c.value("faces_per_min", 0.0), e(str(c, "reconnects")),
                         e(str(c, "faults")));
        h += "<div class=\"crops\">";
        for (const auto& id_crop : crops)
            h += "<img alt=\"crop\" src=\"/api/crops/" + e(text_of(id_crop)) + ".jpg\">";
        h += "</div></div>";
    }
    h += "</div><div class=\"row\">";
    const json st = o.value("store", json::object());
    h += fmt::format("<div class=\"card\"><h3>Crop store</h3><div class=\"stats\"><div><span>crops</span> {}</div>"
                     "<div><span>size</span> {}</div><div><span>disk cap</span> {}</div>"
                     "<div><span>per camera</span> {}</div><div><span>retention</span> {} days</div>"
                     "<div><span>per track</span> {}</div></div></div>",
                     e(str(st, "crops")), bytes_text(st.value("bytes", 0.0)),
                     st.value("max_bytes", 0.0) > 0 ? bytes_text(st.value("max_bytes", 0.0)) : "none",
                     e(str(st, "max_per_camera")), e(str(st, "retention_days")), e(str(st, "best_per_track")));
    const json m = o.value("model", json::object());
    const double progress = m.value("progress", 0.0);
    h += fmt::format("<div class=\"card\"><h3>Model</h3><div class=\"stats\"><div><span>current</span> v{}</div>"
                     "<div><span>gallery revision</span> {}</div></div><div class=\"muted\">training: {}</div>",
                     e(str(m, "current")), e(str(m, "gallery_revision")), e(str(m, "training")));
    if (progress > 0 && progress < 1)
        h += fmt::format("<progress max=\"1\" value=\"{:.3f}\"></progress> {:.0f}%", progress, 100 * progress);
    if (progress > 0 && progress < 1 && m.value("eta_s", -1.0) >= 0)
        h += fmt::format(", about {:.0f} min left", std::ceil(m.value("eta_s", 0.0) / 60));
    h += "</div></div><h2>Doors</h2>" + doors_table(o.value("doors", json::array()));
    return h;
}

std::string overview(const json& o) {
    return "<h1>Overview</h1><div id=\"live\" data-refresh=\"3000\">" + overview_live(o) + "</div>";
}

// The answer to an enrollment: the summary and each photo's (or crop's) result.
std::string results_box(const std::string& flash, const std::vector<EnrollResult>& results) {
    std::string h;
    if (!flash.empty() || !results.empty()) {
        bool any_bad = false;
        for (const auto& r : results) any_bad |= !r.ok;
        h += std::string("<div class=\"flash") + (any_bad ? " bad" : "") + "\" id=\"flash\">" + e(flash);
        if (!results.empty()) {
            h += "<ul class=\"results\">";
            for (const auto& r : results)
                h += std::string("<li class=\"") + (r.ok ? "ok" : "bad") + "\">" + e(r.filename) + ": " +
                     (r.ok ? "enrolled" : "refused: " + e(r.reason)) + "</li>";
            h += "</ul>";
        }
        h += "</div>";
    }
    return h;
}

std::string people(const json& p, const Session& session, const std::string& flash,
                   const std::vector<EnrollResult>& results) {
    const bool may_change = session.role >= Role::operator_;
    std::string h = "<h1>People</h1>" + results_box(flash, results);
    if (may_change)
        h += "<div class=\"card\"><h3>Enroll a person</h3><form method=\"post\" action=\"/people\" "
             "enctype=\"multipart/form-data\" id=\"enroll-form\">" + csrf_field(session) +
             "<label for=\"name\">Name</label><input type=\"text\" id=\"name\" name=\"name\" required maxlength=\"64\" "
             "pattern=\"[A-Za-z0-9 ._\\-]{1,64}\" placeholder=\"e.g. Ada Lovelace\">"
             "<label for=\"photos\">Photos (one face each; JPEG or PNG)</label>"
             "<input type=\"file\" id=\"photos\" name=\"photos\" accept=\"image/jpeg,image/png\" multiple required>"
             "<p><button type=\"submit\" id=\"enroll\">Enroll</button></p></form></div>";
    const json list = p.value("people", json::array());
    h += fmt::format("<h2>Enrolled ({})</h2>", list.size());
    if (list.empty()) h += "<p class=\"muted\">Nobody is enrolled yet.</p>";
    for (const auto& person : list) {
        const std::string name = str(person, "name");
        const json photos = person.value("photos", json::array());
        h += "<div class=\"card person\" data-person=\"" + e(name) + "\"><div><h3>" + e(name) + "</h3><div class=\"muted\">" +
             fmt::format("{} photo(s)", photos.size());
        if (!photos.empty()) h += ", enrolled " + when(str(photos[0], "enrolled"));
        if (!photos.empty() && !str(photos[0], "by").empty()) h += " by " + e(str(photos[0], "by"));
        h += "</div></div><div class=\"photos\">";
        for (const auto& ph : photos) {
            h += "<figure><img alt=\"photo of " + e(name) + "\" title=\"" + e(str(ph, "source")) + "\" src=\"/api/gallery/" +
                 e(str(ph, "id")) + ".jpg\">";
            if (may_change)
                h += "<form method=\"post\" action=\"/people/photo/remove\" data-confirm=\"Remove this photo of " + e(name) +
                     "?\">" + csrf_field(session) + "<input type=\"hidden\" name=\"entry\" value=\"" + e(str(ph, "id")) +
                     "\"><button class=\"link\" type=\"submit\" title=\"remove this photo\">remove</button></form>";
            h += "</figure>";
        }
        h += "</div>";
        if (may_change)
            h += "<form class=\"inline\" method=\"post\" action=\"/people/erase\" data-confirm=\"Erase " + e(name) +
                 " and every photo of them? The doors get a gallery without them.\">" + csrf_field(session) +
                 "<input type=\"hidden\" name=\"name\" value=\"" + e(name) +
                 "\"><button class=\"danger erase\" type=\"submit\">Erase</button></form>";
        h += "</div>";
    }
    return h;
}

std::string models(const json& m, const json& doors, const Session& session, const std::string& flash) {
    const bool admin = session.role >= Role::admin;
    std::string h = "<h1>Models</h1>";
    if (!flash.empty()) h += "<div class=\"flash\" id=\"flash\">" + e(flash) + "</div>";
    const int current = m.value("current", 0);
    h += fmt::format("<p>Current version: <b id=\"current\">v{}</b>; previous: v{}. Version 0 is the pretrained "
                     "source model.</p>",
                     current, m.value("previous", 0));
    h += "<table><tr><th>Version</th><th>Origin</th><th>Created</th><th>Published</th><th>Gate figures</th><th>Doors "
         "running it</th><th></th></tr>";
    auto doors_on = [&](int v) {
        std::string names;
        if (doors.is_array())
            for (const auto& d : doors)
                if (d.value("installed_version", std::int64_t{-1}) == v) names += (names.empty() ? "" : ", ") + e(str(d, "door"));
        return names;
    };
    auto rollback_form = [&](int v) {
        if (!admin || v == current) return std::string();
        return fmt::format("<form class=\"inline\" method=\"post\" action=\"/models/rollback\" data-confirm=\"Roll back "
                           "to version {0}? It becomes a new version and is published to every door.\">{1}"
                           "<input type=\"hidden\" name=\"version\" value=\"{0}\"><button class=\"danger\" "
                           "type=\"submit\">Roll back</button></form>",
                           v, csrf_field(session));
    };
    const json versions = m.value("versions", json::array());
    for (auto it = versions.rbegin(); it != versions.rend(); ++it) {
        const json& v = *it;
        const int n = v.value("version", 0);
        std::string figures;
        const json meta = v.value("meta", json::object());
        for (const char* key : {"gate", "figures"})
            if (meta.contains(key) && meta[key].is_object())
                for (auto f = meta[key].begin(); f != meta[key].end(); ++f)
                    if (!f.value().is_structured()) figures += e(f.key()) + " " + e(text_of(f.value())) + "<br>";
        const std::string origin = str(v, "origin");
        // A version that passed no gate says why, in words (not code).
        const std::string gate_cell =
            !figures.empty() ? "<code>" + figures + "</code>"
            : origin.starts_with("gallery update")
                ? std::string("<span class=\"muted\">no gate: a gallery update (the same model, a new gallery)</span>")
            : origin.starts_with("rollback")
                ? std::string("<span class=\"muted\">no gate: a rollback (an earlier version's model, published again)</span>")
                : "<span class=\"muted\">no gate figures recorded</span>";
        h += fmt::format("<tr><td class=\"time\"><b>v{}</b>{}</td><td>{}</td><td class=\"time\">{}</td><td>{}</td><td>{}</td>"
                         "<td>{}</td><td>{}</td></tr>",
                         n, n == current ? " <span class=\"badge ok\">current</span>" : "", e(str(v, "origin")),
                         e(str(v, "created")), v.value("published", false) ? "yes" : "no", gate_cell, doors_on(n),
                         rollback_form(n));
    }
    h += fmt::format("<tr><td class=\"time\"><b>v0</b>{}</td><td>pretrained source</td><td></td><td></td><td><span "
                     "class=\"muted\">no gate: the pretrained model itself</span></td><td>{}</td>"
                     "<td>{}</td></tr></table>",
                     current == 0 ? " <span class=\"badge ok\">current</span>" : "", doors_on(0), rollback_form(0));
    h += "<h2>Doors</h2>" + doors_table(doors);
    h += "<h2>Gate decisions and releases</h2><table><tr><th>Time</th><th>Event</th><th>Details</th></tr>";
    const json hist = m.value("history", json::array());
    for (auto it = hist.rbegin(); it != hist.rend(); ++it) {
        json rest = *it;
        const std::string time = str(rest, "time"), event = str(rest, "event");
        rest.erase("time");
        rest.erase("event");
        std::string reasons;
        if (rest.contains("reasons") && rest["reasons"].is_array()) {
            for (const auto& r : rest["reasons"]) reasons += "<br>" + e(text_of(r));
            rest.erase("reasons");
        }
        h += "<tr><td class=\"time\">" + e(time) + "</td><td>" + e(event) + "</td><td>" + details(rest) + reasons +
             "</td></tr>";
    }
    return h + "</table>";
}

std::string unknown(const json& u, const json& people, const Session& session, const std::string& flash,
                    const std::vector<EnrollResult>& results) {
    const bool may_change = session.role >= Role::operator_;
    const json groups = u.value("groups", json::array());
    std::string h = "<h1>Unknown faces</h1>" + results_box(flash, results);
    const json clustering = u.value("clustering", json());
    const std::string how =
        clustering.is_object()
            ? "grouped by the latest clustering (" + e(str(clustering, "time")) +
                  "), the crops of one track kept together; crops newer than it are grouped by track"
            : "grouped by track (no training cycle has clustered the crops yet)";
    h += fmt::format("<p class=\"muted\" id=\"grouping\">{} stored crops in {} groups, {}; the largest {} shown. "
                     "Name a group to enroll that person, mark it as not someone, or merge groups that show one "
                     "person, to teach the learner{}.</p>",
                     e(str(u, "crops")), e(str(u, "group_count")), how, groups.size(),
                     may_change ? "; tick crops to name or correct only those" : "");
    if (may_change && groups.size() > 1)
        h += "<form id=\"merge-form\" class=\"mergebar\" method=\"post\" action=\"/unknown/merge\">" +
             csrf_field(session) +
             "<span>Tick <b>merge</b> on the groups that show one person, then</span>"
             "<button class=\"secondary\" type=\"submit\" id=\"merge\">Merge selected groups</button></form>";
    std::string options;
    for (const auto& person : people.value("people", json::array()))
        options += "<option value=\"" + e(str(person, "name")) + "\">" + e(str(person, "name")) + "</option>";
    h += "<div class=\"grid\">";
    for (const auto& g : groups) {
        const std::string ref = e(str(g, "ref"));
        h += "<div class=\"card group\" data-group=\"" + e(str(g, "key")) + "\" data-ref=\"" + ref + "\"><h3>" +
             e(str(g, "camera")) + " <span class=\"muted\">" + e(str(g, "track_label")) + "</span>";
        if (may_change && groups.size() > 1)
            h += "<label class=\"merge-pick\"><input type=\"checkbox\" name=\"group\" value=\"" + ref +
                 "\" form=\"merge-form\"> merge</label>";
        h += "</h3>";
        if (!str(g, "named").empty()) h += "<div><span class=\"badge ok\">named " + e(str(g, "named")) + "</span></div>";
        std::string crops, hidden;
        for (const auto& id : g.value("crops", json::array())) {
            const std::string c = e(text_of(id));
            const std::string img = "<img alt=\"crop " + c + "\" src=\"/api/crops/" + c + ".jpg\">";
            hidden += "<input type=\"hidden\" name=\"crop\" value=\"" + c + "\">";
            crops += may_change ? "<label class=\"pick\" title=\"select this crop\"><input type=\"checkbox\" name=\"pick\" "
                                  "value=\"" + c + "\">" + img + "</label>"
                                : img;
        }
        const std::string count =
            fmt::format("<div class=\"muted small\">{} crop(s), last seen {}</div>", e(str(g, "count")), when(str(g, "last")));
        if (!may_change) {
            h += "<div class=\"crops\">" + crops + "</div>" + count + "</div>";
            continue;
        }
        h += "<form method=\"post\" action=\"/unknown/name\" class=\"group-form\">" + csrf_field(session) + hidden +
             "<div class=\"crops\">" + crops + "</div>" + count +
             "<div class=\"actions\"><input type=\"text\" name=\"name\" required maxlength=\"64\" "
             "pattern=\"[A-Za-z0-9 ._\\-]{1,64}\" placeholder=\"Who is this?\" list=\"people-names\">"
             "<button type=\"submit\" class=\"name\">Name</button></div>";
        if (!options.empty())
            h += "<div class=\"actions\"><select name=\"not_name\" aria-label=\"person\">" + options +
                 "</select><button class=\"secondary not\" type=\"submit\" formaction=\"/unknown/not\" "
                 "formnovalidate>Not this person</button></div>";
        h += "</form></div>";
    }
    h += "</div>";
    if (groups.empty()) h += "<p class=\"muted\">No crop is stored yet.</p>";
    return h + "<datalist id=\"people-names\">" + options + "</datalist>";
}

std::string audit(const std::vector<json>& entries) {
    std::string h = "<h1>Audit log</h1><p class=\"muted\">Newest first (the last 500 entries).</p>"
                    "<table id=\"audit\"><tr><th>Time</th><th>User</th><th>Address</th><th>Action</th><th>Result</th>"
                    "<th>Details</th></tr>";
    for (const auto& a : entries)
        h += "<tr><td class=\"time\">" + e(str(a, "time")) + "</td><td>" + e(str(a, "user")) + "</td><td>" +
             e(str(a, "address")) + "</td><td>" + e(str(a, "action")) + "</td><td>" +
             (a.value("ok", true) ? "<span class=\"badge ok\">ok</span>" : "<span class=\"badge bad\">refused</span>") +
             "</td><td>" + details(a.value("detail", json::object())) + "</td></tr>";
    return h + "</table>";
}

}  // namespace faceadapt::ui::pages
