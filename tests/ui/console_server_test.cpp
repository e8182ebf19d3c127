// ConsoleServer over real HTTP on 127.0.0.1 with real users and audit files: access control
// (sessions, CSRF, roles), the login throttle, escaping, the API. The backend here is a small
// in-memory site (the daemon's real one is exercised by tests/ui/console_browser_test.py).
#include <sys/stat.h>

#include <mutex>
#include <regex>

#include <gtest/gtest.h>
#include <httplib.h>

#include "faceadapt/ui/audit.hpp"
#include "faceadapt/ui/console.hpp"
#include "faceadapt/ui/users.hpp"
#include "test_support.hpp"

using namespace faceadapt::ui;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kHostile = "<script>alert(1)</script>";

// A site in memory: its people can be enrolled and erased; a "rollback" is recorded.
class MemorySite : public ConsoleBackend {
public:
    std::mutex mutex;
    std::vector<std::pair<std::string, std::string>> people_;  // name, by
    std::vector<int> rollbacks;
    std::string camera = "cam1";

    json overview() override {
        std::lock_guard lock(mutex);
        return {{"site", "test"},
                {"status", "cameras 1/1 up"},
                {"cameras", json::array({{{"id", camera}, {"state", "streaming"}, {"fps", 4.5},
                                          {"faces_per_min", 12.0}, {"reconnects", 1}, {"faults", 0},
                                          {"latest_crops", json::array({7})}}})},
                {"store", {{"crops", 10}, {"bytes", 12345}, {"max_bytes", 0}}},
                {"model", {{"current", 2}, {"training", "idle"}}},
                {"doors", json::array({{{"door", "door-" + kHostile}, {"installed_version", 2}, {"status", "installed"}}})}};
    }
    json people() override {
        std::lock_guard lock(mutex);
        json list = json::array();
        for (const auto& [n, by] : people_)
            list.push_back({{"name", n}, {"photos", json::array({{{"id", 1}, {"enrolled", "now"}, {"by", by}}})}});
        return {{"people", list}};
    }
    std::vector<EnrollResult> enroll(const std::string& name, const std::vector<UploadedPhoto>& photos,
                                     const std::string& by) override {
        if (name.empty()) throw std::invalid_argument("a name is needed");
        std::vector<EnrollResult> out;
        std::lock_guard lock(mutex);
        for (const auto& p : photos) {
            const bool ok = p.bytes.rfind("FACE", 0) == 0;
            out.push_back({p.filename, ok, ok ? "" : "no face found", ok ? 1 : 0});
            if (ok) people_.emplace_back(name, by);
        }
        return out;
    }
    int erase(const std::string& name) override {
        std::lock_guard lock(mutex);
        return static_cast<int>(std::erase_if(people_, [&](const auto& p) { return p.first == name; }));
    }
    bool remove_photo(std::int64_t id) override {
        std::lock_guard lock(mutex);
        removed_photos.push_back(id);
        return id == 1;
    }
    std::vector<std::int64_t> removed_photos;
    json models() override { return {{"current", 2}, {"previous", 1}, {"versions", json::array()}, {"history", json::array()}}; }
    std::string rollback(int version) override {
        if (version != 1) throw std::invalid_argument("version " + std::to_string(version) + " is not stored");
        std::lock_guard lock(mutex);
        rollbacks.push_back(version);
        return "rollback to version 1 started";
    }
    std::optional<std::string> crop_jpeg(std::int64_t id) override {
        if (id == 7) return std::string("\xff\xd8jpeg", 6);
        return std::nullopt;
    }
    std::optional<std::string> gallery_jpeg(std::int64_t) override { return std::nullopt; }
    std::optional<std::string> snapshot_jpeg(const std::string&) override { return std::string("\xff\xd8snap", 6); }
    json unknown_faces(std::size_t) override {
        std::lock_guard lock(mutex);
        return {{"crops", 5}, {"group_count", 2},
                {"groups", json::array({{{"key", camera + "/5"}, {"ref", 7}, {"camera", camera}, {"track", 5}, {"count", 3},
                                         {"crops", json::array({7, 8, 9})}, {"named", named}, {"last", "2026-12-01T19:35:04Z"}},
                                        {{"key", camera + "/6"}, {"ref", 10}, {"camera", camera}, {"track", 6}, {"count", 2},
                                         {"crops", json::array({10, 11})}, {"named", ""}, {"last", "<i>not a time</i>"}}})}};
    }
    std::vector<EnrollResult> name_crops(const std::string& name, const std::vector<std::int64_t>& crops,
                                         const std::string& by) override {
        std::lock_guard lock(mutex);
        named = name;
        std::vector<EnrollResult> out;
        for (auto id : crops) out.push_back({"crop " + std::to_string(id), true, "", id});
        people_.emplace_back(name, by);
        return out;
    }
    int not_person(const std::string& name, const std::vector<std::int64_t>& crops) override {
        std::lock_guard lock(mutex);
        for (auto id : crops) cannot.emplace_back(id, name);
        return static_cast<int>(crops.size());
    }
    int merge_groups(const std::vector<std::int64_t>& crops) override {
        if (crops.size() < 2) throw std::invalid_argument("merge 2 to 20 groups");
        std::lock_guard lock(mutex);
        merges.push_back(crops);
        return static_cast<int>(crops.size() - 1);
    }
    std::string named;
    std::vector<std::pair<std::int64_t, std::string>> cannot;
    std::vector<std::vector<std::int64_t>> merges;
};

std::string set_cookie_value(const httplib::Result& r, const std::string& name) {
    for (auto [it, end] = r->headers.equal_range("Set-Cookie"); it != end; ++it)
        if (it->second.rfind(name + "=", 0) == 0) return it->second.substr(name.size() + 1, it->second.find(';') - name.size() - 1);
    return {};
}
std::string set_cookie_line(const httplib::Result& r, const std::string& name) {
    for (auto [it, end] = r->headers.equal_range("Set-Cookie"); it != end; ++it)
        if (it->second.rfind(name + "=", 0) == 0) return it->second;
    return {};
}

class ConsoleServerTest : public ::testing::Test {
protected:
    faceadapt::test::TempDir dir;
    MemorySite site;
    std::unique_ptr<ConsoleServer> server;

    void SetUp() override {
        UserStore users(users_file(dir.path()));
        users.add("admin", Role::admin, "admin-password");
        users.add("op", Role::operator_, "operator-password");
        users.add("viewer", Role::viewer, "viewer-password");
        users.save();
        server = std::make_unique<ConsoleServer>(options(), site);
    }
    ConsoleServer::Options options() const {
        ConsoleServer::Options o;
        o.listen = "127.0.0.1:0";
        o.users_file = users_file(dir.path());
        o.audit_file = audit_file(dir.path());
        o.site = "site-" + kHostile;
        return o;
    }
    httplib::Client client() const {
        httplib::Client c("127.0.0.1", server->port());
        c.set_connection_timeout(5);
        c.set_read_timeout(10);
        return c;
    }
    struct Login {
        std::string cookie;  // "fa_session=..."
        std::string csrf;
    };
    Login api_login(const std::string& user, const std::string& password) {
        auto c = client();
        auto r = c.Post("/api/login", json{{"user", user}, {"password", password}}.dump(), "application/json");
        EXPECT_TRUE(r);
        EXPECT_EQ(r->status, 200) << r->body;
        return {"fa_session=" + set_cookie_value(r, "fa_session"), json::parse(r->body).value("csrf", "")};
    }
    static httplib::Headers with(const Login& l, bool csrf = true) {
        httplib::Headers h{{"Cookie", l.cookie}};
        if (csrf) h.emplace("X-CSRF-Token", l.csrf);
        return h;
    }
    static httplib::MultipartFormDataItems enrollment(const std::string& name, const std::string& filename,
                                                     const std::string& bytes) {
        return {{"name", name, "", ""}, {"photos", bytes, filename, "image/jpeg"}};
    }
};

TEST_F(ConsoleServerTest, EveryPageAndApiCallWithoutASessionIsRefused) {
    auto c = client();
    for (const char* page : {"/", "/unknown", "/people", "/models", "/audit"}) {
        auto r = c.Get(page);
        ASSERT_TRUE(r) << page;
        EXPECT_EQ(r->status, 303) << page;
        EXPECT_EQ(r->get_header_value("Location"), "/login") << page;
    }
    for (const char* api : {"/api/overview", "/api/people", "/api/models", "/api/audit", "/api/crops/7.jpg",
                            "/api/gallery/1.jpg", "/api/cameras/cam1/snapshot.jpg", "/api/session", "/api/unknown",
                            "/fragment/overview"}) {
        auto r = c.Get(api);
        ASSERT_TRUE(r) << api;
        EXPECT_EQ(r->status, 401) << api;
        EXPECT_EQ(r->body.find("jpeg"), std::string::npos) << api << ": no image without a session";
    }
    auto post = c.Post("/api/people", enrollment("Ada", "a.jpg", "FACE"));
    EXPECT_EQ(post->status, 401);
    EXPECT_EQ(c.Delete("/api/people/Ada")->status, 401);
    EXPECT_EQ(c.Post("/api/models/1/rollback")->status, 401);
    EXPECT_EQ(c.Post("/people/erase", "name=Ada", "application/x-www-form-urlencoded")->status, 401);
    EXPECT_EQ(c.Post("/models/rollback", "version=1", "application/x-www-form-urlencoded")->status, 401);
    EXPECT_EQ(c.Post("/api/unknown/name", R"({"name":"Ada","crops":[7]})", "application/json")->status, 401);
    EXPECT_EQ(c.Post("/unknown/not", "name=Ada&crop=7", "application/x-www-form-urlencoded")->status, 401);
    EXPECT_EQ(c.Post("/api/unknown/merge", R"({"crops":[7,10]})", "application/json")->status, 401);
    EXPECT_EQ(c.Post("/unknown/merge", "group=7&group=10", "application/x-www-form-urlencoded")->status, 401);
    EXPECT_TRUE(site.merges.empty());
    // A made-up session id is no session.
    EXPECT_EQ(c.Get("/api/overview", {{"Cookie", "fa_session=" + std::string(64, 'a')}})->status, 401);
    EXPECT_TRUE(site.people_.empty());
    EXPECT_TRUE(site.rollbacks.empty());
}

TEST_F(ConsoleServerTest, FormLoginNeedsItsCsrfTokenAndSetsAStrictHttpOnlyCookie) {
    auto c = client();
    auto page = c.Get("/login");
    ASSERT_EQ(page->status, 200);
    const std::string token = set_cookie_value(page, "fa_login");
    ASSERT_FALSE(token.empty());
    EXPECT_NE(page->body.find("value=\"" + token + "\""), std::string::npos);
    EXPECT_NE(page->get_header_value("Content-Security-Policy").find("script-src 'self'"), std::string::npos);

    auto no_token = c.Post("/login", {{"Cookie", "fa_login=" + token}}, "user=admin&password=admin-password",
                           "application/x-www-form-urlencoded");
    EXPECT_EQ(no_token->status, 403);
    EXPECT_TRUE(set_cookie_value(no_token, "fa_session").empty());

    auto ok = c.Post("/login", {{"Cookie", "fa_login=" + token}}, "csrf=" + token + "&user=admin&password=admin-password",
                     "application/x-www-form-urlencoded");
    ASSERT_EQ(ok->status, 303) << ok->body;
    EXPECT_EQ(ok->get_header_value("Location"), "/");
    const std::string line = set_cookie_line(ok, "fa_session");
    EXPECT_NE(line.find("HttpOnly"), std::string::npos) << line;
    EXPECT_NE(line.find("SameSite=Strict"), std::string::npos) << line;
    EXPECT_EQ(line.find("Secure"), std::string::npos) << "no Secure over plain HTTP: " << line;
    const std::string cookie = "fa_session=" + set_cookie_value(ok, "fa_session");
    auto overview = c.Get("/", {{"Cookie", cookie}});
    ASSERT_EQ(overview->status, 200);
    EXPECT_NE(overview->body.find("cam1"), std::string::npos);

    // Logging out ends the session on the server, whatever the browser keeps.
    const std::string csrf = std::regex_search(overview->body, std::regex("name=\"csrf\" value=\"([0-9a-f]{64})\""))
                                 ? [&] { std::smatch m; std::regex_search(overview->body, m, std::regex("name=\"csrf\" value=\"([0-9a-f]{64})\"")); return m[1].str(); }()
                                 : "";
    ASSERT_FALSE(csrf.empty());
    auto out = c.Post("/logout", {{"Cookie", cookie}}, "csrf=" + csrf, "application/x-www-form-urlencoded");
    EXPECT_EQ(out->status, 303);
    EXPECT_EQ(c.Get("/api/overview", {{"Cookie", cookie}})->status, 401);
}

TEST_F(ConsoleServerTest, AStateChangingRequestWithoutTheCsrfTokenIsRefused) {
    const Login op = api_login("op", "operator-password");
    auto c = client();
    auto none = c.Post("/api/people", with(op, false), enrollment("Ada", "a.jpg", "FACE"));
    EXPECT_EQ(none->status, 403) << none->body;
    Login wrong = op;
    wrong.csrf = std::string(64, '0');
    EXPECT_EQ(c.Post("/api/people", with(wrong), enrollment("Ada", "a.jpg", "FACE"))->status, 403);
    EXPECT_EQ(c.Delete("/api/people/Ada", with(op, false))->status, 403);
    EXPECT_EQ(c.Post("/people/erase", with(op, false), "name=Ada", "application/x-www-form-urlencoded")->status, 403);
    EXPECT_TRUE(site.people_.empty());
    auto ok = c.Post("/api/people", with(op), enrollment("Ada", "a.jpg", "FACE"));
    ASSERT_EQ(ok->status, 200) << ok->body;
    EXPECT_EQ(json::parse(ok->body)["enrolled"], 1);
    ASSERT_EQ(site.people_.size(), 1u);
    EXPECT_EQ(site.people_[0].second, "op") << "who enrolled is passed on";
}

TEST_F(ConsoleServerTest, AViewerCannotEnrollEraseOrRollBackAndAnOperatorCannotRollBack) {
    site.people_.emplace_back("Ada", "admin");
    const Login viewer = api_login("viewer", "viewer-password");
    auto c = client();
    EXPECT_EQ(c.Get("/api/people", with(viewer, false))->status, 200) << "a viewer sees";
    EXPECT_EQ(c.Post("/api/people", with(viewer), enrollment("Bob", "b.jpg", "FACE"))->status, 403);
    EXPECT_EQ(c.Delete("/api/people/Ada", with(viewer))->status, 403);
    EXPECT_EQ(c.Delete("/api/gallery/1", with(viewer))->status, 403);
    EXPECT_EQ(c.Post("/api/models/1/rollback", with(viewer), "", "application/json")->status, 403);
    EXPECT_EQ(c.Post("/models/rollback", with(viewer), "csrf=" + viewer.csrf + "&version=1",
                     "application/x-www-form-urlencoded")->status, 403);
    const Login op = api_login("op", "operator-password");
    EXPECT_EQ(c.Post("/api/models/1/rollback", with(op), "", "application/json")->status, 403);
    EXPECT_EQ(site.people_.size(), 1u);
    EXPECT_TRUE(site.rollbacks.empty());
    // The viewer's page has no enroll form and no erase button.
    const std::string page = c.Get("/people", with(viewer, false))->body;
    EXPECT_EQ(page.find("enroll-form"), std::string::npos);
    EXPECT_EQ(page.find("/people/erase"), std::string::npos);

    const Login admin = api_login("admin", "admin-password");
    auto r = c.Post("/api/models/1/rollback", with(admin), "", "application/json");
    EXPECT_EQ(r->status, 202) << r->body;
    EXPECT_EQ(c.Post("/api/models/9/rollback", with(admin), "", "application/json")->status, 400);
    EXPECT_EQ(site.rollbacks, std::vector<int>{1});
    auto erased = c.Delete("/api/people/Ada", with(op));
    EXPECT_EQ(erased->status, 200) << erased->body;
    EXPECT_TRUE(site.people_.empty());
    EXPECT_EQ(c.Delete("/api/people/Ada", with(op))->status, 404);
    EXPECT_EQ(c.Delete("/api/gallery/1", with(op, false))->status, 403) << "no CSRF token";
    EXPECT_EQ(c.Delete("/api/gallery/1", with(op))->status, 200);
    EXPECT_EQ(c.Delete("/api/gallery/2", with(op))->status, 404);
    EXPECT_EQ(site.removed_photos, (std::vector<std::int64_t>{1, 2}));

    // Every refusal and action is in the audit log.
    const auto audit = json::parse(c.Get("/api/audit?limit=50", with(admin, false))->body)["entries"];
    int forbidden = 0, rollbacks = 0, erases = 0;
    for (const auto& a : audit) {
        forbidden += a["action"] == "forbidden";
        rollbacks += a["action"] == "rollback" && a["ok"] == true;
        erases += a["action"] == "erase" && a["user"] == "op" && a["ok"] == true;
    }
    EXPECT_EQ(forbidden, 6);
    EXPECT_EQ(rollbacks, 1);
    EXPECT_EQ(erases, 1);
}

TEST_F(ConsoleServerTest, HtmlFromOutsideIsRenderedInert) {
    site.camera = kHostile;
    site.people_.emplace_back(kHostile, "op");
    const Login op = api_login("op", "operator-password");
    auto c = client();
    for (const char* page : {"/", "/people", "/models", "/fragment/overview", "/unknown"}) {
        const std::string body = c.Get(page, with(op, false))->body;
        EXPECT_EQ(body.find(kHostile), std::string::npos) << page;
        EXPECT_NE(body.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos) << page;
    }
    // An uploaded file's name is echoed in the refusal: escaped.
    const std::string evil_file = "<img src=x onerror=alert(2)>.jpg";
    auto r = c.Post("/people", with(op), enrollment("Bob", evil_file, "not a face"));
    ASSERT_EQ(r->status, 200);
    EXPECT_EQ(r->body.find("<img src=x"), std::string::npos);
    EXPECT_NE(r->body.find("&lt;img src=x onerror=alert(2)&gt;.jpg: refused: no face found"), std::string::npos);
    // The audit page shows names as text too.
    const std::string audit = c.Get("/audit", with(op, false))->body;
    EXPECT_EQ(audit.find("<img src=x"), std::string::npos);
}

TEST_F(ConsoleServerTest, UnknownFacesNamedAndCorrectedByAnOperatorOnly) {
    const Login viewer = api_login("viewer", "viewer-password");
    const Login op = api_login("op", "operator-password");
    auto c = client();
    const std::string page = c.Get("/unknown", with(viewer, false))->body;
    EXPECT_NE(page.find("/api/crops/8.jpg"), std::string::npos);
    EXPECT_EQ(page.find("/unknown/name"), std::string::npos) << "a viewer gets no naming form";
    EXPECT_NE(page.find("last seen <time datetime=\"2026-12-01T19:35:04Z\">2026-12-01 19:35 UTC</time>"), std::string::npos)
        << "a short time that does not wrap in the card";
    EXPECT_NE(page.find("last seen &lt;i&gt;not a time&lt;/i&gt;"), std::string::npos) << "anything else as escaped text";
    EXPECT_EQ(c.Post("/api/unknown/name", with(viewer), R"({"name":"Ada","crops":[7,8]})", "application/json")->status, 403);
    EXPECT_EQ(c.Post("/api/unknown/name", with(op, false), R"({"name":"Ada","crops":[7,8]})", "application/json")->status, 403);
    EXPECT_EQ(c.Post("/api/unknown/name", with(op), R"({"name":"Ada","crops":"7"})", "application/json")->status, 400);
    auto named = c.Post("/api/unknown/name", with(op), R"({"name":"Ada","crops":[7,8]})", "application/json");
    ASSERT_EQ(named->status, 200) << named->body;
    EXPECT_EQ(json::parse(named->body)["enrolled"], 2);
    // The pages' form: several "crop" fields.
    auto form = c.Post("/unknown/not", with(op), "csrf=" + op.csrf + "&name=Bob&crop=7&crop=9",
                       "application/x-www-form-urlencoded");
    ASSERT_EQ(form->status, 200) << form->body;
    EXPECT_NE(form->body.find("2 crop(s) recorded as not Bob"), std::string::npos);
    EXPECT_EQ(site.cannot, (std::vector<std::pair<std::int64_t, std::string>>{{7, "Bob"}, {9, "Bob"}}));
    EXPECT_NE(c.Get("/unknown", with(op, false))->body.find("named Ada"), std::string::npos);
}

// Merge two groups and act on the ticked crops of a group only: operator role, CSRF, audited.
TEST_F(ConsoleServerTest, GroupsMergedAndTickedCropsCorrectedByAnOperatorOnly) {
    const Login viewer = api_login("viewer", "viewer-password");
    const Login op = api_login("op", "operator-password");
    auto c = client();
    const std::string viewer_page = c.Get("/unknown", with(viewer, false))->body;
    EXPECT_EQ(viewer_page.find("merge-form"), std::string::npos) << "a viewer gets no merge form";
    EXPECT_EQ(viewer_page.find("name=\"pick\""), std::string::npos) << "nor crop ticks";
    const std::string page = c.Get("/unknown", with(op, false))->body;
    EXPECT_NE(page.find("id=\"merge-form\""), std::string::npos);
    EXPECT_NE(page.find("name=\"group\" value=\"10\" form=\"merge-form\""), std::string::npos);
    EXPECT_NE(page.find("name=\"pick\" value=\"8\""), std::string::npos);
    EXPECT_EQ(c.Post("/api/unknown/merge", with(viewer), R"({"crops":[7,10]})", "application/json")->status, 403);
    EXPECT_EQ(c.Post("/api/unknown/merge", with(op, false), R"({"crops":[7,10]})", "application/json")->status, 403);
    EXPECT_EQ(c.Post("/api/unknown/merge", with(op), R"({"crops":"7"})", "application/json")->status, 400);
    EXPECT_EQ(c.Post("/api/unknown/merge", with(op), R"({"crops":[7]})", "application/json")->status, 400);
    // Hostile merges: too many groups, ids that are script or overflow int64, a non-integer id.
    json many = json::array();
    for (int i = 0; i < 21; ++i) many.push_back(i);
    EXPECT_EQ(c.Post("/api/unknown/merge", with(op), json{{"crops", many}}.dump(), "application/json")->status, 400);
    EXPECT_EQ(c.Post("/api/unknown/merge", with(op), R"({"crops":[7,1.5]})", "application/json")->status, 400);
    for (const char* bad : {"%3Cscript%3Ealert(1)%3C%2Fscript%3E", "99999999999999999999", "10abc", "%2010", "%2B10"}) {
        auto r = c.Post("/unknown/merge", with(op), "csrf=" + op.csrf + "&group=7&group=" + bad,
                        "application/x-www-form-urlencoded");
        EXPECT_EQ(r->status, 400) << bad;
        EXPECT_EQ(r->body.find("<script>"), std::string::npos) << "nothing echoed raw";
        EXPECT_EQ(r->body.find("99999999999999999999"), std::string::npos) << "nothing echoed";
    }
    EXPECT_TRUE(site.merges.empty());
    auto merged = c.Post("/api/unknown/merge", with(op), R"({"crops":[7,10]})", "application/json");
    ASSERT_EQ(merged->status, 200) << merged->body;
    EXPECT_EQ(json::parse(merged->body)["recorded"], 1);
    auto form = c.Post("/unknown/merge", with(op), "csrf=" + op.csrf + "&group=10&group=7", "application/x-www-form-urlencoded");
    ASSERT_EQ(form->status, 200) << form->body;
    EXPECT_NE(form->body.find("2 groups merged into one"), std::string::npos);
    EXPECT_EQ(site.merges, (std::vector<std::vector<std::int64_t>>{{7, 10}, {10, 7}}));
    // The group form: the ticked crops ("pick") win over the group's ("crop"); "Not this
    // person" takes its name from the people list ("not_name").
    auto not_form = c.Post("/unknown/not", with(op),
                           "csrf=" + op.csrf + "&crop=7&crop=8&crop=9&pick=8&name=&not_name=Bob",
                           "application/x-www-form-urlencoded");
    ASSERT_EQ(not_form->status, 200) << not_form->body;
    EXPECT_EQ(site.cannot, (std::vector<std::pair<std::int64_t, std::string>>{{8, "Bob"}}));
    auto name_form = c.Post("/unknown/name", with(op), "csrf=" + op.csrf + "&crop=7&crop=8&crop=9&pick=7&pick=9&name=Cy&not_name=Bob",
                            "application/x-www-form-urlencoded");
    ASSERT_EQ(name_form->status, 200) << name_form->body;
    EXPECT_NE(name_form->body.find("Cy: 2 of 2 crop(s) enrolled"), std::string::npos);
    bool audited = false;
    const json audit = json::parse(c.Get("/api/audit?limit=50", with(op, false))->body);
    for (const auto& e : audit["entries"])
        audited |= e["action"] == "merge_groups" && e["user"] == "op" && e.value("ok", false);
    EXPECT_TRUE(audited);
}

// DNS rebinding: a request whose Host is not this console's is refused before any handler,
// the login too; localhost, the listen address and [ui] allowed_hosts are served.
TEST_F(ConsoleServerTest, ARequestForAnotherHostNameIsRefusedBeforeAnyHandler) {
    server.reset();
    auto o = options();
    o.allowed_hosts = {"nvr.site.lan"};
    server = std::make_unique<ConsoleServer>(o, site);
    const Login op = api_login("op", "operator-password");  // Host: 127.0.0.1:<port>
    auto c = client();
    const std::string port = std::to_string(server->port());
    for (const std::string& host : std::vector<std::string>{"evil.example", "evil.example:" + port, "127.0.0.1.evil.example", "<b>x</b>", "",
                                   "nvr.site.lan.evil", "localhost:abc"}) {
        httplib::Headers h = with(op);
        h.emplace("Host", host);
        auto r = c.Get("/api/overview", h);
        ASSERT_TRUE(r) << host;
        EXPECT_EQ(r->status, 421) << host;
        EXPECT_EQ(r->body.find("cam1"), std::string::npos) << host << ": nothing served";
        EXPECT_EQ(r->body.find("<b>"), std::string::npos) << "the Host is not echoed";
        auto login = c.Post("/api/login", h, json{{"user", "op"}, {"password", "operator-password"}}.dump(), "application/json");
        EXPECT_EQ(login->status, 421) << host;
        EXPECT_TRUE(set_cookie_value(login, "fa_session").empty());
        auto named = c.Post("/api/unknown/merge", h, R"({"crops":[7,10]})", "application/json");
        EXPECT_EQ(named->status, 421) << host;
    }
    EXPECT_TRUE(site.merges.empty());
    for (const std::string& host : std::vector<std::string>{"127.0.0.1:" + port, "localhost:" + port, "LOCALHOST", "nvr.site.lan",
                                   "NVR.Site.Lan:8443", "[::1]:" + port}) {
        httplib::Headers h = with(op);
        h.emplace("Host", host);
        auto r = c.Get("/api/overview", h);
        ASSERT_TRUE(r) << host;
        EXPECT_EQ(r->status, 200) << host;
    }
}

TEST_F(ConsoleServerTest, FiveWrongPasswordsSlowFurtherAttempts) {
    auto c = client();
    for (int i = 0; i < 5; ++i) {
        auto r = c.Post("/api/login", json{{"user", "admin"}, {"password", "wrong-" + std::to_string(i)}}.dump(),
                        "application/json");
        EXPECT_EQ(r->status, 401) << "attempt " << i + 1;
    }
    // The sixth, even with the right password, is refused without being checked.
    auto locked = c.Post("/api/login", json{{"user", "admin"}, {"password", "admin-password"}}.dump(), "application/json");
    EXPECT_EQ(locked->status, 429);
    EXPECT_EQ(locked->get_header_value("Retry-After"), "1");
    EXPECT_TRUE(set_cookie_value(locked, "fa_session").empty());
    // Other users from this address are slowed as well (the address's key).
    EXPECT_EQ(c.Post("/api/login", json{{"user", "op"}, {"password", "operator-password"}}.dump(),
                     "application/json")->status, 429);
    // Once the delay has passed the right password works (polled: the delay is the server's).
    const auto t0 = std::chrono::steady_clock::now();
    int status = 0;
    while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10)) {
        status = c.Post("/api/login", json{{"user", "admin"}, {"password", "admin-password"}}.dump(), "application/json")->status;
        if (status != 429) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(status, 200);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(800));
    const auto audit = AuditLog(audit_file(dir.path())).tail(100);
    int failed = 0, throttled = 0;
    for (const auto& a : audit) {
        failed += a["action"] == "login_failed";
        throttled += a["action"] == "login_throttled";
    }
    EXPECT_EQ(failed, 5);
    EXPECT_GE(throttled, 2);
}

// Garbage and hostile bodies: each gets a clear 4xx, never a crash, and the console still logs in.
TEST_F(ConsoleServerTest, GarbageAndOversizeBodiesAreRefusedAndTheServerKeepsServing) {
    auto c = client();
    auto post = [&](const std::string& body, const std::string& type = "application/json") {
        auto r = c.Post("/api/login", body, type);
        EXPECT_TRUE(r) << "no answer for a body of " << body.size() << " bytes";
        return r ? r->status : 0;
    };
    EXPECT_EQ(post("{not json"), 400);
    EXPECT_EQ(post(std::string("\x00\xff\x1b[31m", 6)), 400);
    EXPECT_EQ(post("[1,2,3]"), 400);
    EXPECT_EQ(post(R"({"user": 5, "password": ["x"]})"), 400);
    EXPECT_EQ(post(R"({"user": "admin"})"), 400);
    EXPECT_EQ(post(std::string(100000, '['), "application/json"), 400);  // deep nesting
    EXPECT_EQ(post("user=admin&password=x", "text/plain"), 415);
    const int oversize = post(std::string((25u << 20) + 1, ' '));
    EXPECT_EQ(oversize, 413);
    // A refused body's text is never echoed back.
    auto r = c.Post("/api/login", "<script>alert(1)</script>", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body.find("<script>"), std::string::npos) << r->body;
    const auto l = api_login("op", "operator-password");
    auto people = c.Post("/api/people", with(l), "{broken", "application/json");
    ASSERT_TRUE(people);
    EXPECT_GE(people->status, 400);
    EXPECT_LT(people->status, 500);
}

TEST_F(ConsoleServerTest, ARemovedUserLosesTheirSession) {
    const Login viewer = api_login("viewer", "viewer-password");
    auto c = client();
    EXPECT_EQ(c.Get("/api/overview", with(viewer, false))->status, 200);
    UserStore users = UserStore::load(users_file(dir.path()));
    ASSERT_TRUE(users.remove("viewer"));
    // The file's mtime must change for the server to notice: rewrite until it does.
    const auto before = fs::last_write_time(users_file(dir.path()));
    do users.save(); while (fs::last_write_time(users_file(dir.path())) == before);
    EXPECT_EQ(c.Get("/api/overview", with(viewer, false))->status, 401);
}

TEST_F(ConsoleServerTest, ApiServesJsonAndThumbnails) {
    const Login viewer = api_login("viewer", "viewer-password");
    auto c = client();
    auto o = c.Get("/api/overview", with(viewer, false));
    ASSERT_EQ(o->status, 200);
    EXPECT_EQ(o->get_header_value("Content-Type"), "application/json");
    EXPECT_EQ(json::parse(o->body)["cameras"][0]["id"], "cam1");
    auto crop = c.Get("/api/crops/7.jpg", with(viewer, false));
    EXPECT_EQ(crop->status, 200);
    EXPECT_EQ(crop->get_header_value("Content-Type"), "image/jpeg");
    EXPECT_EQ(c.Get("/api/crops/8.jpg", with(viewer, false))->status, 404);
    EXPECT_EQ(c.Get("/api/session", with(viewer, false))->status, 200);
    // Numbers in the query are whole integers or refused (nothing half-read as with std::stoul).
    EXPECT_EQ(c.Get("/api/unknown?groups=3", with(viewer, false))->status, 200);
    for (const char* bad : {"5abc", "%205", "", "-", "0x10"})
        EXPECT_EQ(c.Get(std::string("/api/unknown?groups=") + bad, with(viewer, false))->status, 400) << bad;
    auto css = c.Get("/assets/console.css");
    EXPECT_EQ(css->status, 200) << "assets are public (no faces in them)";
    EXPECT_EQ(c.Post("/api/login", "user=admin", "application/x-www-form-urlencoded")->status, 415);
}

TEST_F(ConsoleServerTest, TlsSetsSecureCookies) {
    const fs::path cert = dir.path() / "cert.pem", key = dir.path() / "key.pem";
    const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -keyout " +
                            key.string() + " -out " + cert.string() + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "openssl cannot make a test certificate here";
    auto o = options();
    o.cert_file = cert;
    o.key_file = key;
    ConsoleServer tls(o, site);
    EXPECT_TRUE(tls.tls());
    httplib::SSLClient c("127.0.0.1", tls.port());
    c.enable_server_certificate_verification(false);
    auto r = c.Post("/api/login", json{{"user", "admin"}, {"password", "admin-password"}}.dump(), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    EXPECT_NE(set_cookie_line(r, "fa_session").find("; Secure"), std::string::npos);
    auto bad = options();
    bad.cert_file = key;  // not a certificate
    bad.key_file = key;
    EXPECT_THROW(ConsoleServer(bad, site), std::runtime_error);
}

}  // namespace
