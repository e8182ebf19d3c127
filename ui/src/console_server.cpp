// ConsoleServer: routes, access control and rendering over cpp-httplib. See the header for the
// rules and for why cpp-httplib is acceptable here; docs/console.md for the API.
#include "faceadapt/ui/console.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <limits>
#include <mutex>
#include <stdexcept>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "faceadapt/common/listen_address.hpp"
#include "faceadapt/common/text.hpp"
#include "faceadapt/ui/audit.hpp"
#include "faceadapt/ui/html.hpp"
#include "faceadapt/ui/users.hpp"
#include "pages.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace faceadapt::ui {
namespace {

constexpr const char* kSessionCookie = "fa_session";
constexpr const char* kLoginCookie = "fa_login";
constexpr std::size_t kMaxPhotos = 20;

// A crop id from a form field, whole digits only; throws std::invalid_argument otherwise.
std::int64_t crop_id(const std::string& text) {
    const auto id = common::parse_int(text);
    if (!id) throw std::invalid_argument("crop ids are integers");
    return *id;
}

std::string cookie_value(const httplib::Request& req, std::string_view name) {
    const std::string header = req.get_header_value("Cookie");
    std::string_view rest(header);
    while (!rest.empty()) {
        const auto semi = rest.find(';');
        std::string_view part = rest.substr(0, semi);
        rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
        while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
        const auto eq = part.find('=');
        if (eq != std::string_view::npos && part.substr(0, eq) == name) return std::string(part.substr(eq + 1, 128));
    }
    return {};
}

bool is_api(const httplib::Request& req) { return req.path.rfind("/api/", 0) == 0; }

void send_json(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(), "application/json");
}

void send_error(const httplib::Request& req, httplib::Response& res, int status, const std::string& why) {
    if (is_api(req) || req.path.rfind("/fragment/", 0) == 0) {
        send_json(res, status, {{"error", why}});
    } else {
        res.status = status;
        res.set_content("<!doctype html><html><head><meta charset=\"utf-8\"><link rel=\"stylesheet\" "
                        "href=\"/assets/console.css\"><title>faceadapt</title></head><body><main>" +
                            pages::message(std::to_string(status), why) +
                            "<p><a href=\"/\">Back to the console</a></p></main></body></html>",
                        "text/html; charset=utf-8");
    }
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// The name part of a Host header ("Example.org:8080" -> "example.org", "[::1]:80" -> "[::1]"),
// lower case; "" when it is not a host name with an optional numeric port.
std::string host_name_of(const std::string& host) {
    if (host.empty() || host.size() > 260) return {};
    std::string name = host, port;
    if (host.front() == '[') {
        const auto close = host.find(']');
        if (close == std::string::npos) return {};
        name = host.substr(0, close + 1);
        port = host.substr(close + 1);
    } else if (const auto colon = host.find(':'); colon != std::string::npos) {
        name = host.substr(0, colon);
        port = host.substr(colon);
    }
    if (!port.empty() && (port.size() < 2 || port.size() > 6 || port[0] != ':' ||
                          !std::all_of(port.begin() + 1, port.end(), [](char c) { return c >= '0' && c <= '9'; })))
        return {};
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
        }))
        return {};
    return lower(name);
}

void redirect(httplib::Response& res, const std::string& to) {
    res.status = 303;
    res.set_header("Location", to);
}

}  // namespace

struct ConsoleServer::Impl {
    Options options;
    ConsoleBackend& backend;
    std::unique_ptr<httplib::Server> server;
    SessionStore sessions;
    LoginThrottle throttle;
    AuditLog audit;
    bool tls = false;
    int port = 0;
    std::atomic<bool> listen_ended{false};

    std::vector<std::string> hosts;  // the Host names served (lower case): listen host, localhost, allowed_hosts

    // A request's Host names this console (DNS rebinding: a page of another site whose name
    // now resolves to this address sends that site's name).
    bool host_allowed(const httplib::Request& req) const {
        const std::string name = host_name_of(req.get_header_value("Host"));
        return !name.empty() && std::find(hosts.begin(), hosts.end(), name) != hosts.end();
    }

    std::mutex users_mutex;
    UserStore users{fs::path()};
    fs::file_time_type users_mtime{};
    bool users_loaded = false;

    Impl(Options o, ConsoleBackend& b)
        : options(std::move(o)), backend(b), sessions(options.sessions), throttle(options.throttle),
          audit(options.audit_file) {}

    // The users file, read again when its modification time changed. A file that cannot be
    // read keeps the last good copy (logged).
    UserStore current_users() {
        std::lock_guard lock(users_mutex);
        std::error_code ec;
        const auto mtime = fs::last_write_time(options.users_file, ec);
        if (!users_loaded || (!ec && mtime != users_mtime) || (ec && !users.users().empty())) {
            try {
                users = UserStore::load(options.users_file);
                users_mtime = ec ? fs::file_time_type{} : mtime;
                users_loaded = true;
            } catch (const std::exception& e) {
                spdlog::error("console: {}; keeping the users read before", e.what());
            }
        }
        return users;
    }

    void record(const httplib::Request& req, const std::string& user, const std::string& action, json detail,
                bool ok = true) {
        try {
            audit.append({user, req.remote_addr, action, std::move(detail), ok});
        } catch (const std::exception& e) {
            spdlog::error("console: {}", e.what());
        }
    }

    std::string cookie_attributes(long max_age) const {
        return "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(max_age) + (tls ? "; Secure" : "");
    }

    // The request's live session whose user still exists with the same role; nullopt otherwise.
    std::optional<Session> session_of(const httplib::Request& req) {
        const std::string id = cookie_value(req, kSessionCookie);
        if (id.empty()) return std::nullopt;
        auto s = sessions.find(id);
        if (!s) return std::nullopt;
        const auto user = current_users().find(s->user);
        if (!user || user->role != s->role) {
            sessions.end(id);
            return std::nullopt;
        }
        return s;
    }

    std::string csrf_of(const httplib::Request& req) const {
        if (req.has_header("X-CSRF-Token")) return req.get_header_value("X-CSRF-Token");
        if (req.has_file("csrf")) return req.get_file_value("csrf").content;
        if (req.has_param("csrf")) return req.get_param_value("csrf");
        return {};
    }

    // Access control for one request: a session (pages: redirect to /login; API: 401), the CSRF
    // token for a state-changing method (403), the role (403). nullopt when refused (answered).
    std::optional<Session> guard(const httplib::Request& req, httplib::Response& res, Role need = Role::viewer) {
        auto s = session_of(req);
        if (!s) {
            if (is_api(req) || req.path.rfind("/fragment/", 0) == 0 || req.method != "GET")
                send_error(req, res, 401, "log in first");
            else
                redirect(res, "/login");
            return std::nullopt;
        }
        if (req.method != "GET" && req.method != "HEAD" && !equal_secret(csrf_of(req), s->csrf)) {
            record(req, s->user, "csrf_refused", {{"method", req.method}, {"path", req.path}}, false);
            send_error(req, res, 403, "missing or wrong CSRF token");
            return std::nullopt;
        }
        if (s->role < need) {
            record(req, s->user, "forbidden", {{"method", req.method}, {"path", req.path}}, false);
            send_error(req, res, 403, "your role (" + to_string(s->role) + ") may not do this; " + to_string(need) +
                                          " needed");
            return std::nullopt;
        }
        return s;
    }

    void page(httplib::Response& res, const Session& s, const std::string& title, const std::string& body) {
        res.set_content(pages::layout(options.site, title, title, s, body), "text/html; charset=utf-8");
    }

    // ---- login --------------------------------------------------------------------------------
    // Tries a login; on success the session (cookie set), else the refusal already answered.
    std::optional<Session> try_login(const httplib::Request& req, httplib::Response& res, const std::string& user,
                                     const std::string& password, bool api) {
        auto fail = [&](int status, const std::string& why) {
            if (api) {
                send_json(res, status, {{"error", why}});
            } else {
                res.status = status;
                const std::string token = random_hex(16);
                res.set_header("Set-Cookie", std::string(kLoginCookie) + "=" + token + cookie_attributes(600));
                res.set_content(pages::login(options.site, why, token), "text/html; charset=utf-8");
            }
        };
        const std::string who = common::printable(user, 32);
        if (auto wait = throttle.locked(user, req.remote_addr)) {
            const long secs = static_cast<long>((wait->count() + 999) / 1000);
            res.set_header("Retry-After", std::to_string(secs));
            record(req, who, "login_throttled", {{"retry_after_s", secs}}, false);
            fail(429, "Too many failed attempts: try again in " + std::to_string(secs) + " s.");
            return std::nullopt;
        }
        const auto found = current_users().verify(user, password);
        if (!found) {
            throttle.failure(user, req.remote_addr);
            record(req, who, "login_failed", json::object(), false);
            fail(401, "Wrong user or password.");
            return std::nullopt;
        }
        throttle.success(user, req.remote_addr);
        Session s = sessions.create(found->name, found->role);
        res.set_header("Set-Cookie",
                       std::string(kSessionCookie) + "=" + s.id + cookie_attributes(options.sessions.lifetime.count()));
        record(req, s.user, "login", {{"role", to_string(s.role)}});
        return s;
    }

    void routes();
    void people_routes();
    void model_routes();
    void unknown_routes();
};

void ConsoleServer::Impl::routes() {
    httplib::Server& srv = *server;
    srv.Get("/assets/console.css", [](const httplib::Request&, httplib::Response& res) {
        res.set_header("Cache-Control", "max-age=3600");
        res.set_content(pages::kCss, "text/css; charset=utf-8");
    });
    srv.Get("/assets/console.js", [](const httplib::Request&, httplib::Response& res) {
        res.set_header("Cache-Control", "max-age=3600");
        res.set_content(pages::kJs, "text/javascript; charset=utf-8");
    });
    srv.Get("/login", [this](const httplib::Request& req, httplib::Response& res) {
        if (session_of(req)) return redirect(res, "/");
        const std::string token = random_hex(16);
        res.set_header("Set-Cookie", std::string(kLoginCookie) + "=" + token + cookie_attributes(600));
        res.set_content(pages::login(options.site, "", token), "text/html; charset=utf-8");
    });
    srv.Post("/login", [this](const httplib::Request& req, httplib::Response& res) {
        // The login form's own CSRF token (double submit: cookie = field), so that another site
        // cannot log a browser in under its account.
        const std::string cookie = cookie_value(req, kLoginCookie);
        if (cookie.empty() || !equal_secret(cookie, req.get_param_value("csrf"))) {
            record(req, "", "csrf_refused", {{"method", "POST"}, {"path", "/login"}}, false);
            return send_error(req, res, 403, "missing or wrong CSRF token: reload the login page");
        }
        if (try_login(req, res, req.get_param_value("user"), req.get_param_value("password"), false))
            redirect(res, "/");
    });
    srv.Post("/api/login", [this](const httplib::Request& req, httplib::Response& res) {
        // JSON only: a browser cannot send it from another site without a CORS preflight, which
        // is never granted, so this needs no CSRF token of its own.
        if (req.get_header_value("Content-Type").rfind("application/json", 0) != 0)
            return send_json(res, 415, {{"error", "send {\"user\", \"password\"} as application/json"}});
        json body;
        try {
            body = json::parse(req.body);
        } catch (const std::exception&) {
            return send_json(res, 400, {{"error", "the body is not JSON"}});
        }
        if (!body.is_object() || !body.contains("user") || !body.contains("password") || !body["user"].is_string() ||
            !body["password"].is_string())
            return send_json(res, 400, {{"error", "send {\"user\", \"password\"}"}});
        if (auto s = try_login(req, res, body["user"], body["password"], true))
            send_json(res, 200, {{"user", s->user}, {"role", to_string(s->role)}, {"csrf", s->csrf}});
    });
    auto logout = [this](const httplib::Request& req, httplib::Response& res) {
        auto s = guard(req, res);
        if (!s) return;
        sessions.end(s->id);
        record(req, s->user, "logout", json::object());
        res.set_header("Set-Cookie", std::string(kSessionCookie) + "=" + cookie_attributes(0));
        if (is_api(req)) send_json(res, 200, {{"ok", true}});
        else redirect(res, "/login");
    };
    srv.Post("/logout", logout);
    srv.Post("/api/logout", logout);
    srv.Get("/api/session", [this](const httplib::Request& req, httplib::Response& res) {
        if (auto s = guard(req, res)) send_json(res, 200, {{"user", s->user}, {"role", to_string(s->role)}, {"csrf", s->csrf}});
    });

    srv.Get("/", [this](const httplib::Request& req, httplib::Response& res) {
        if (auto s = guard(req, res)) page(res, *s, "Overview", pages::overview(backend.overview()));
    });
    srv.Get("/fragment/overview", [this](const httplib::Request& req, httplib::Response& res) {
        if (guard(req, res)) res.set_content(pages::overview_live(backend.overview()), "text/html; charset=utf-8");
    });
    srv.Get("/api/overview", [this](const httplib::Request& req, httplib::Response& res) {
        if (guard(req, res)) send_json(res, 200, backend.overview());
    });
    srv.Get("/audit", [this](const httplib::Request& req, httplib::Response& res) {
        if (auto s = guard(req, res)) page(res, *s, "Audit", pages::audit(audit.tail(500)));
    });
    srv.Get("/api/audit", [this](const httplib::Request& req, httplib::Response& res) {
        if (!guard(req, res)) return;
        std::size_t n = 100;
        if (req.has_param("limit")) {
            const auto limit = common::parse_int(req.get_param_value("limit"));
            if (!limit) return send_json(res, 400, {{"error", "limit must be a number"}});
            n = static_cast<std::size_t>(std::clamp<std::int64_t>(*limit, 1, 5000));
        }
        send_json(res, 200, {{"entries", audit.tail(n)}});
    });
    auto jpeg = [this](const httplib::Request& req, httplib::Response& res, const std::optional<std::string>& image) {
        if (!image) return send_error(req, res, 404, "no such image");
        res.set_header("Cache-Control", "private, max-age=300");
        res.set_content(*image, "image/jpeg");
    };
    srv.Get(R"(/api/crops/(\d{1,18})\.jpg)", [this, jpeg](const httplib::Request& req, httplib::Response& res) {
        if (guard(req, res)) jpeg(req, res, backend.crop_jpeg(std::stoll(req.matches[1])));
    });
    srv.Get(R"(/api/gallery/(\d{1,18})\.jpg)", [this, jpeg](const httplib::Request& req, httplib::Response& res) {
        if (guard(req, res)) jpeg(req, res, backend.gallery_jpeg(std::stoll(req.matches[1])));
    });
    srv.Get(R"(/api/cameras/([A-Za-z0-9_-]{1,64})/snapshot\.jpg)",
            [this, jpeg](const httplib::Request& req, httplib::Response& res) {
                if (guard(req, res)) {
                    jpeg(req, res, backend.snapshot_jpeg(req.matches[1]));
                    res.set_header("Cache-Control", "no-store");
                }
            });
    people_routes();
    model_routes();
    unknown_routes();
}

void ConsoleServer::Impl::unknown_routes() {
    httplib::Server& srv = *server;
    constexpr std::size_t kGroups = 60;
    srv.Get("/unknown", [this](const httplib::Request& req, httplib::Response& res) {
        if (auto s = guard(req, res))
            page(res, *s, "Unknown faces", pages::unknown(backend.unknown_faces(kGroups), backend.people(), *s, "", {}));
    });
    srv.Get("/api/unknown", [this](const httplib::Request& req, httplib::Response& res) {
        if (!guard(req, res)) return;
        std::size_t n = kGroups;
        if (req.has_param("groups")) {
            const auto groups = common::parse_int(req.get_param_value("groups"));
            if (!groups) return send_json(res, 400, {{"error", "groups must be a number"}});
            n = static_cast<std::size_t>(std::clamp<std::int64_t>(*groups, 1, 1000));
        }
        send_json(res, 200, backend.unknown_faces(n));
    });
    // The crops and name of a "name" / "not" request: form fields (pages) or JSON (API).
    auto parse = [](const httplib::Request& req, std::string& name, std::vector<std::int64_t>& crops) {
        if (req.get_header_value("Content-Type").rfind("application/json", 0) == 0) {
            const json body = json::parse(req.body, nullptr, false);
            if (!body.is_object() || !body.contains("name") || !body["name"].is_string() || !body.contains("crops") ||
                !body["crops"].is_array())
                throw std::invalid_argument("send {\"name\", \"crops\": [crop ids]}");
            name = body["name"];
            for (const auto& c : body["crops"]) {
                if (!c.is_number_integer()) throw std::invalid_argument("crop ids are integers");
                crops.push_back(c.get<std::int64_t>());
            }
        } else {
            // The page's group form: "name" (the text box) or "not_name" (the people list, for
            // "not this person"); the crops ticked ("pick") or, when none is, the group's ("crop").
            name = req.path == "/unknown/not" && req.has_param("not_name") ? req.get_param_value("not_name")
                                                                          : req.get_param_value("name");
            const char* field = req.has_param("pick") ? "pick" : "crop";
            for (auto [it, end] = req.params.equal_range(field); it != end; ++it) {
                crops.push_back(crop_id(it->second));
            }
        }
    };
    // An operator's request about crops ("name" or "not"): access, the name and crops parsed,
    // refusals answered and audited; `act` does the rest.
    using Act = std::function<void(const httplib::Request&, httplib::Response&, const Session&, const std::string&,
                                   const std::vector<std::int64_t>&)>;
    auto crops_request = [this, parse](const std::string& action, Act act) {
        return [this, parse, action, act](const httplib::Request& req, httplib::Response& res) {
            auto s = guard(req, res, Role::operator_);
            if (!s) return;
            std::string name;
            std::vector<std::int64_t> crops;
            try {
                parse(req, name, crops);
                act(req, res, *s, name, crops);
            } catch (const std::invalid_argument& e) {
                record(req, s->user, action, {{"name", name}, {"error", e.what()}}, false);
                send_error(req, res, 400, e.what());
            }
        };
    };
    auto name_group = crops_request("name_group", [this](const httplib::Request& req, httplib::Response& res,
                                                         const Session& s, const std::string& name,
                                                         const std::vector<std::int64_t>& crops) {
        const auto results = backend.name_crops(name, crops, s.user);
        int ok = 0;
        for (const auto& r : results) ok += r.ok;
        record(req, s.user, "name_group", {{"name", name}, {"crops", crops}, {"enrolled", ok}}, ok > 0);
        if (is_api(req)) {
            json list = json::array();
            for (const auto& r : results) list.push_back({{"crop", r.filename}, {"ok", r.ok}, {"reason", r.reason}, {"entry", r.entry}});
            return send_json(res, ok > 0 ? 200 : 422, {{"name", name}, {"enrolled", ok}, {"results", list}});
        }
        page(res, s, "Unknown faces",
             pages::unknown(backend.unknown_faces(kGroups), backend.people(), s,
                            name + ": " + std::to_string(ok) + " of " + std::to_string(results.size()) +
                                " crop(s) enrolled; the doors get the updated gallery.",
                            results));
    });
    srv.Post("/unknown/name", name_group);
    srv.Post("/api/unknown/name", name_group);
    auto not_person = crops_request("not_person", [this](const httplib::Request& req, httplib::Response& res,
                                                         const Session& s, const std::string& name,
                                                         const std::vector<std::int64_t>& crops) {
        const int rows = backend.not_person(name, crops);
        record(req, s.user, "not_person", {{"name", name}, {"crops", crops}});
        if (is_api(req)) return send_json(res, 200, {{"name", name}, {"recorded", rows}});
        page(res, s, "Unknown faces",
             pages::unknown(backend.unknown_faces(kGroups), backend.people(), s,
                            std::to_string(rows) + " crop(s) recorded as not " + name + " (for the learner).", {}));
    });
    srv.Post("/unknown/not", not_person);
    srv.Post("/api/unknown/not", not_person);
    // "Merge": one crop of each group, {"crops": [...]} (API) or "group" fields (the page's ticks).
    auto merge = [this](const httplib::Request& req, httplib::Response& res) {
        auto s = guard(req, res, Role::operator_);
        if (!s) return;
        std::vector<std::int64_t> crops;
        try {
            if (req.get_header_value("Content-Type").rfind("application/json", 0) == 0) {
                const json body = json::parse(req.body, nullptr, false);
                if (!body.is_object() || !body.contains("crops") || !body["crops"].is_array() || body["crops"].size() > 20)
                    throw std::invalid_argument("send {\"crops\": [one crop id of each group, 2 to 20]}");
                for (const auto& c : body["crops"]) {
                    if (!c.is_number_integer()) throw std::invalid_argument("crop ids are integers");
                    crops.push_back(c.get<std::int64_t>());
                }
            } else {
                for (auto [it, end] = req.params.equal_range("group"); it != end && crops.size() <= 20; ++it) {
                    crops.push_back(crop_id(it->second));
                }
            }
            const int rows = backend.merge_groups(crops);
            record(req, s->user, "merge_groups", {{"crops", crops}});
            if (is_api(req)) return send_json(res, 200, {{"merged", crops.size()}, {"recorded", rows}});
            page(res, *s, "Unknown faces",
                 pages::unknown(backend.unknown_faces(kGroups), backend.people(), *s,
                                std::to_string(crops.size()) + " groups merged into one (for the learner too).", {}));
        } catch (const std::invalid_argument& e) {
            record(req, s->user, "merge_groups", {{"crops", crops}, {"error", e.what()}}, false);
            send_error(req, res, 400, e.what());
        }
    };
    srv.Post("/unknown/merge", merge);
    srv.Post("/api/unknown/merge", merge);
}

void ConsoleServer::Impl::people_routes() {
    httplib::Server& srv = *server;
    srv.Get("/people", [this](const httplib::Request& req, httplib::Response& res) {
        if (auto s = guard(req, res)) page(res, *s, "People", pages::people(backend.people(), *s, "", {}));
    });
    srv.Get("/api/people", [this](const httplib::Request& req, httplib::Response& res) {
        if (guard(req, res)) send_json(res, 200, backend.people());
    });
    // Enrollment from a multipart upload: "name" and one or more "photos".
    auto enroll = [this](const httplib::Request& req, httplib::Response& res, const Session& s)
        -> std::optional<std::pair<std::string, std::vector<EnrollResult>>> {
        const std::string name = req.has_file("name") ? req.get_file_value("name").content : "";
        std::vector<UploadedPhoto> photos;
        for (auto [it, end] = req.files.equal_range("photos"); it != end; ++it)
            if (!it->second.content.empty()) photos.push_back({it->second.filename, it->second.content});
        if (photos.empty() || photos.size() > kMaxPhotos) {
            send_error(req, res, 400, "send 1 to " + std::to_string(kMaxPhotos) + " photos as multipart field \"photos\"");
            return std::nullopt;
        }
        try {
            auto results = backend.enroll(name, photos, s.user);
            json detail{{"name", name}, {"photos", photos.size()}};
            int ok = 0;
            json refused = json::array();
            for (const auto& r : results) {
                ok += r.ok;
                if (!r.ok) refused.push_back(r.filename + ": " + r.reason);
            }
            detail["enrolled"] = ok;
            detail["refused"] = refused;
            record(req, s.user, "enroll", detail, ok > 0);
            return std::make_pair(name, std::move(results));
        } catch (const std::invalid_argument& e) {
            record(req, s.user, "enroll", {{"name", name}, {"error", e.what()}}, false);
            send_error(req, res, 400, e.what());
            return std::nullopt;
        }
    };
    srv.Post("/people", [this, enroll](const httplib::Request& req, httplib::Response& res) {
        auto s = guard(req, res, Role::operator_);
        if (!s) return;
        if (auto done = enroll(req, res, *s)) {
            int ok = 0;
            for (const auto& r : done->second) ok += r.ok;
            const std::string flash = done->first + ": " + std::to_string(ok) + " of " +
                                      std::to_string(done->second.size()) + " photo(s) enrolled.";
            page(res, *s, "People", pages::people(backend.people(), *s, flash, done->second));
        }
    });
    srv.Post("/api/people", [this, enroll](const httplib::Request& req, httplib::Response& res) {
        auto s = guard(req, res, Role::operator_);
        if (!s) return;
        if (auto done = enroll(req, res, *s)) {
            json results = json::array();
            int ok = 0;
            for (const auto& r : done->second) {
                ok += r.ok;
                results.push_back({{"file", r.filename}, {"ok", r.ok}, {"reason", r.reason}, {"entry", r.entry}});
            }
            send_json(res, ok > 0 ? 200 : 422, {{"name", done->first}, {"enrolled", ok}, {"results", results}});
        }
    });
    auto erase = [this](const httplib::Request& req, const Session& s, const std::string& name) {
        const int removed = backend.erase(name);
        record(req, s.user, "erase", {{"name", name}, {"entries", removed}}, removed > 0);
        return removed;
    };
    srv.Post("/people/erase", [this, erase](const httplib::Request& req, httplib::Response& res) {
        auto s = guard(req, res, Role::operator_);
        if (!s) return;
        const std::string name = req.get_param_value("name");
        const int removed = erase(req, *s, name);
        const std::string flash = removed > 0 ? name + " erased (" + std::to_string(removed) +
                                                    " photo(s)); the doors get a gallery without them."
                                              : "Nobody named " + name + " is enrolled.";
        page(res, *s, "People", pages::people(backend.people(), *s, flash, {}));
    });
    auto remove_photo = [this](const httplib::Request& req, httplib::Response& res, const Session& s,
                               const std::string& text) -> std::optional<bool> {
        const std::int64_t id = common::parse_int(text).value_or(-1);
        if (id < 0) {
            send_error(req, res, 400, "entry must be a gallery entry id");
            return std::nullopt;
        }
        const bool removed = backend.remove_photo(id);
        record(req, s.user, "remove_photo", {{"entry", id}}, removed);
        return removed;
    };
    srv.Post("/people/photo/remove", [this, remove_photo](const httplib::Request& req, httplib::Response& res) {
        auto s = guard(req, res, Role::operator_);
        if (!s) return;
        if (auto removed = remove_photo(req, res, *s, req.get_param_value("entry")))
            page(res, *s, "People",
                 pages::people(backend.people(), *s, *removed ? "Photo removed; the doors get the updated gallery." : "No such photo.", {}));
    });
    srv.Delete(R"(/api/gallery/(\d{1,18}))", [this, remove_photo](const httplib::Request& req, httplib::Response& res) {
        auto s = guard(req, res, Role::operator_);
        if (!s) return;
        if (auto removed = remove_photo(req, res, *s, req.matches[1]))
            send_json(res, *removed ? 200 : 404, {{"removed", *removed}});
    });
    srv.Delete(R"(/api/people/([^/]{1,200}))", [this, erase](const httplib::Request& req, httplib::Response& res) {
        auto s = guard(req, res, Role::operator_);
        if (!s) return;
        const std::string name = req.matches[1];
        const int removed = erase(req, *s, name);
        if (removed == 0) return send_json(res, 404, {{"error", "nobody by that name is enrolled"}});
        send_json(res, 200, {{"name", name}, {"removed", removed}});
    });
}

void ConsoleServer::Impl::model_routes() {
    httplib::Server& srv = *server;
    srv.Get("/models", [this](const httplib::Request& req, httplib::Response& res) {
        if (auto s = guard(req, res))
            page(res, *s, "Models", pages::models(backend.models(), backend.overview().value("doors", json::array()), *s, ""));
    });
    srv.Get("/api/models", [this](const httplib::Request& req, httplib::Response& res) {
        if (guard(req, res)) send_json(res, 200, backend.models());
    });
    auto rollback = [this](const httplib::Request& req, httplib::Response& res, const Session& s,
                           const std::string& text) -> std::optional<std::string> {
        const auto parsed = common::parse_int(text);
        const int version = parsed && *parsed >= 0 && *parsed <= std::numeric_limits<int>::max() ? static_cast<int>(*parsed) : -1;
        try {
            if (version < 0) throw std::invalid_argument("not a version number");
            std::string what = backend.rollback(version);
            record(req, s.user, "rollback", {{"version", version}, {"result", what}});
            return what;
        } catch (const std::invalid_argument& e) {
            record(req, s.user, "rollback", {{"version", common::printable(text, 20)}, {"error", e.what()}}, false);
            send_error(req, res, 400, e.what());
            return std::nullopt;
        }
    };
    srv.Post("/models/rollback", [this, rollback](const httplib::Request& req, httplib::Response& res) {
        auto s = guard(req, res, Role::admin);
        if (!s) return;
        if (auto what = rollback(req, res, *s, req.get_param_value("version")))
            page(res, *s, "Models",
                 pages::models(backend.models(), backend.overview().value("doors", json::array()), *s, *what));
    });
    srv.Post(R"(/api/models/(\d{1,9})/rollback)", [this, rollback](const httplib::Request& req, httplib::Response& res) {
        auto s = guard(req, res, Role::admin);
        if (!s) return;
        if (auto what = rollback(req, res, *s, req.matches[1])) send_json(res, 202, {{"result", *what}});
    });
}

ConsoleServer::ConsoleServer(Options options, ConsoleBackend& backend)
    : impl_(std::make_unique<Impl>(std::move(options), backend)) {
    Impl& d = *impl_;
    const auto [host, port] = common::parse_listen_address(d.options.listen, "ui listen address");
    if (d.options.cert_file.empty() != d.options.key_file.empty())
        throw std::runtime_error("console: cert_file and key_file go together");
    if (!d.options.cert_file.empty()) {
        auto ssl = std::make_unique<httplib::SSLServer>(d.options.cert_file.c_str(), d.options.key_file.c_str());
        if (!ssl->is_valid())
            throw std::runtime_error("console: cannot use the certificate " + d.options.cert_file.string() +
                                     " with the key " + d.options.key_file.string() + " (unreadable or not a pair)");
        d.server = std::move(ssl);
        d.tls = true;
    } else {
        d.server = std::make_unique<httplib::Server>();
    }
    httplib::Server& srv = *d.server;
    d.hosts = {"localhost", "127.0.0.1", "[::1]", lower(host.find(':') != std::string::npos ? "[" + host + "]" : host)};
    for (const auto& h : d.options.allowed_hosts) d.hosts.push_back(lower(h));
    // Before any handler: a request under another host name gets 421 and nothing else.
    srv.set_pre_routing_handler([&d](const httplib::Request& req, httplib::Response& res) {
        if (d.host_allowed(req)) return httplib::Server::HandlerResponse::Unhandled;
        spdlog::debug("console: refused a request from {} for another host name", common::printable(req.remote_addr, 64));
        send_error(req, res, 421, "this console is not served under that host name (see [ui] allowed_hosts)");
        return httplib::Server::HandlerResponse::Handled;
    });
    const int threads = std::max(1, d.options.threads);
    // cpp-httplib takes ownership of the queue it is given (its API: a raw pointer it deletes).
    srv.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
    const auto io = static_cast<time_t>(d.options.io_timeout.count());
    srv.set_read_timeout(io, 0);
    srv.set_write_timeout(io, 0);
    srv.set_keep_alive_timeout(io);
    srv.set_keep_alive_max_count(100);
    srv.set_payload_max_length(d.options.max_body_bytes);
    srv.set_default_headers({{"X-Content-Type-Options", "nosniff"},
                             {"X-Frame-Options", "DENY"},
                             {"Referrer-Policy", "no-referrer"},
                             {"Cache-Control", "no-store"},
                             {"Content-Security-Policy",
                              "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                              "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"}});
    srv.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
            std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        spdlog::error("console: {} {}: {}", req.method, common::printable(req.path, 120), what);
        send_error(req, res, 500, "internal error (see the daemon's log)");
    });
    d.routes();
    if (port == 0) {
        d.port = srv.bind_to_any_port(host);
        if (d.port < 0) throw std::runtime_error("console: cannot bind " + d.options.listen);
    } else {
        if (!srv.bind_to_port(host, port))
            throw std::runtime_error("console: cannot bind " + d.options.listen + " (in use or not a local address)");
        d.port = port;
    }
    thread_ = std::thread([&srv, &d] {
        srv.listen_after_bind();
        d.listen_ended = true;
    });
    // cpp-httplib's stop() does nothing before the listen loop has begun (it would then run on,
    // and the destructor's join never return): return only once it runs (or has ended).
    while (!srv.is_running() && !d.listen_ended) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    spdlog::info("console: serving {}://{}:{}/", d.tls ? "https" : "http", host, d.port);
}

ConsoleServer::~ConsoleServer() {
    impl_->server->stop();
    if (thread_.joinable()) thread_.join();
}

int ConsoleServer::port() const { return impl_->port; }
bool ConsoleServer::tls() const { return impl_->tls; }

}  // namespace faceadapt::ui
